"""``autoice score``: the official AutoICE score of an upload package against reference charts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from autoice import schema
from autoice.cli import jsonout
from autoice.cli.cluster import scheduler_option

if TYPE_CHECKING:
    from autoice.metrics import ScoreAccumulator, Scores
    from autoice.submission import SceneGroup, ScoreReport

_METRIC = {"SIC": "R2 x100 (class indices)", "SOD": "weighted F1 x100", "FLOE": "weighted F1 x100"}


@click.command("score")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option(
    "--reference",
    "reference",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="*_prep_reference.nc files or RTT files with charts, or folders of them. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--per-scene", is_flag=True, help="Also score every scene on its own.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=0, show_default=True,
              help="Scene resamples for 95% confidence intervals (0 = none; 1000 is typical).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for scores.json, per_class.csv and confusion-matrix PNGs.")  # fmt: skip
@click.option("--by", "by", multiple=True, type=click.Choice(schema.GROUPINGS),
              help="Also score each group of scenes: by service, month, season (winter Dec-Mar, melt "
                   "Apr-Jun, summer Jul-Sep, freeze-up Oct-Nov) or region (of the chart). Repeatable.")  # fmt: skip
@scheduler_option
def command(
    submission: Path,
    reference: tuple[Path, ...],
    as_json: bool,
    per_scene: bool,
    n_boot: int,
    seed: int,
    out_dir: Path | None,
    by: tuple[str, ...],
    scheduler: str | None,
) -> None:
    """Score SUBMISSION (upload_package.nc) as the challenge server did.

    Per chart, reference pixels of 255 are dropped and all scenes pooled: SIC R2 on class
    indices, SOD and FLOE weighted F1, each x100 rounded to 3 decimals; combined =
    (2 SIC + 2 SOD + FLOE) / 5. A chart missing (or unusable) for any scene scores 0.
    With --by, each group's scenes are pooled the same way (a chart with no valid pixel
    in a group is nan). With --scheduler, each scene is scored on that Dask cluster and only its
    confusion matrices and sums come back.
    """
    from autoice.submission import score_submission

    report = score_submission(submission, list(reference), progress=not as_json, scheduler=scheduler)
    for line in report.problems:
        click.echo(f"warning: {line}; its chart scores 0 (as on the challenge server)", err=True)
    for name in report.extra:
        click.echo(f"warning: {name}: in the submission but matches no reference scene (ignored)", err=True)
    summary = build_summary(
        report, per_scene=per_scene or out_dir is not None, n_boot=n_boot, seed=seed, by=tuple(dict.fromkeys(by))
    )
    if out_dir is not None:
        write_outputs(report, summary, out_dir)
        click.echo(f"wrote {out_dir}/scores.json, per_class.csv and confusion PNGs", err=True)
    if as_json:
        shown = dict(summary) if per_scene else {k: v for k, v in summary.items() if k != "per_scene"}
        click.echo(jsonout.dumps(shown))
    else:
        click.echo(format_table(summary, per_scene=per_scene))


def _scores(acc: ScoreAccumulator) -> dict[str, Any]:
    return _as_dict(acc.result())


def _as_dict(res: Scores) -> dict[str, Any]:
    return {**res.as_dict(), "valid_pixels": res.n_valid, "missing": list(res.missing)}


def _group_dict(group: SceneGroup) -> dict[str, Any]:
    return {"n_scenes": len(group.keys), **_as_dict(group.scores), "scenes": list(group.keys)}


def build_summary(
    report: ScoreReport, *, per_scene: bool, n_boot: int, seed: int, by: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The JSON-ready result: official scores first, then details.

    ``by`` adds ``summary["by"][grouping][label]``: the group's scores, valid pixels, missing
    charts and scenes (see :func:`autoice.submission.score_groups`).
    """
    from autoice.metrics import bootstrap
    from autoice.submission import score_groups

    summary: dict[str, Any] = _scores(report.pooled)
    summary["n_scenes"] = len(report.scenes)
    summary["missing_variables"] = report.missing
    summary["extra_variables"] = report.extra
    if n_boot:
        ci = bootstrap(list(report.scenes.values()), n_boot, seed=seed)
        summary["bootstrap"] = {"n": n_boot, "seed": seed, "level": 0.95, **{k: list(v) for k, v in ci.items()}}
    if by:
        summary["by"] = {g: {grp.label: _group_dict(grp) for grp in score_groups(report, g)} for g in by}
    if per_scene:
        summary["per_scene"] = {key: _scores(acc) for key, acc in report.scenes.items()}
    return summary


def _fmt(x: float) -> str:
    return f"{x:8.3f}" if math.isfinite(x) else f"{'nan':>8}"


def format_groups(grouping: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    """Text rows of one grouping: scenes, scores and valid pixels per group (nan = no valid pixel)."""
    import calendar

    names = {k: f"{k} {calendar.month_abbr[int(k)]}" for k in groups} if grouping == "month" else {k: k for k in groups}
    width = max(len(grouping), *map(len, names.values())) + 2
    title = f"By {grouping}" + (f" ({schema.describe_seasons()})" if grouping == "season" else "")
    head = f"{grouping:<{width}}{'scenes':>6}" + "".join(f"{c:>10}" for c in (*schema.CHARTS, "combined"))
    head += "".join(f"{c + ' pixels':>14}" for c in schema.CHARTS)
    lines = [title, head]
    for label, g in groups.items():
        row = f"{names[label]:<{width}}{g['n_scenes']:>6}"
        row += "".join(f"  {_fmt(g[c])}" for c in (*schema.CHARTS, "combined"))
        row += "".join(f"{g['valid_pixels'][c]:>14,}" for c in schema.CHARTS)
        if g["missing"]:
            row += f"  (missing: {', '.join(g['missing'])} scored 0)"
        lines.append(row)
    return lines


def format_table(summary: dict[str, Any], *, per_scene: bool) -> str:
    """Readable text: overall scores per chart, optional CIs, optional groups, optional per-scene rows."""
    boot = summary.get("bootstrap")
    head = f"{'chart':<9}{'score':>8}  {'metric':<24}{'valid pixels':>14}"
    if boot:
        head += f"  {'95% CI (' + str(boot['n']) + ' resamples)':>28}"
    lines = [f"AutoICE score over {summary['n_scenes']} scenes", head]
    for chart in (*schema.CHARTS, "combined"):
        metric = _METRIC.get(chart, "(2 SIC + 2 SOD + FLOE) / 5")
        pixels = f"{summary['valid_pixels'][chart]:>14,}" if chart in schema.CHARTS else " " * 14
        row = f"{chart:<9}{_fmt(summary[chart])}  {metric:<24}{pixels}"
        if chart in summary["missing"]:
            row += "  (missing: scored 0)"
        if boot:
            lo, hi = boot[chart]
            row += f"  {'[' + format(lo, '.3f') + ', ' + format(hi, '.3f') + ']':>28}"
        lines.append(row)
    for grouping, groups in summary.get("by", {}).items():
        lines += ["", *format_groups(grouping, groups)]
    if per_scene and "per_scene" in summary:
        lines += ["", f"{'scene':<22}" + "".join(f"{c:>10}" for c in (*schema.CHARTS, "combined"))]
        for key, s in summary["per_scene"].items():
            lines.append(f"{key:<22}" + "".join(f"  {_fmt(s[c])}" for c in (*schema.CHARTS, "combined")))
    return "\n".join(lines)


def write_outputs(report: ScoreReport, summary: dict[str, Any], out_dir: Path) -> None:
    """``per_class.csv``, ``confusion_<chart>.png`` and, last, ``scores.json`` in ``out_dir`` (each atomic)."""
    import contextlib
    import csv

    from autoice.atomic import atomic_output, ensure_folder

    ensure_folder(out_dir)
    pooled = report.pooled
    marker = out_dir / "scores.json"  # written last: present means the folder is complete
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()  # a rerun interrupted half-way must not look complete with the old scores
    with atomic_output(out_dir / "per_class.csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["chart", "class", "name", "precision", "recall", "f1", "support"])
        for chart in schema.CHARTS:
            st = pooled.charts[chart].per_class()
            for k, name in enumerate(schema.CLASS_NAMES[chart]):
                w.writerow(
                    [chart, k, name, f"{st.precision[k]:.6f}", f"{st.recall[k]:.6f}", f"{st.f1[k]:.6f}",
                     int(st.support[k])]
                )  # fmt: skip
    from autoice.plots import confusion_figure, save_figure

    for chart in schema.CHARTS:
        figure = confusion_figure(pooled.charts[chart].confusion_matrix(), chart)
        save_figure(figure, out_dir / f"confusion_{chart}.png")
    with atomic_output(marker) as tmp:
        tmp.write_text(jsonout.dumps(summary, indent=2) + "\n")
