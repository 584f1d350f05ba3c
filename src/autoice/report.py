"""One self-contained HTML page about a submission: scores, per-class figures, confusion matrices, maps.

The page is what a person reads after ``autoice score``: the official scores (computed by
:func:`autoice.submission.score_submission`, so they equal the score command's), optionally the
same scores per group of scenes (service, month, season, region), a row per scene, precision /
recall / F1 per class, confusion matrices, a map of all predicted scenes together (a mosaic on the
polar stereographic grid, when the scenes' tie points are at hand: ``_prep.nc`` beside the
references) and, per scene, the reference beside the prediction with an error map. Images are PNGs
embedded as base64 data URIs and the CSS is inline, so the single file can be mailed or archived.
It is written atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autoice import schema
from autoice.atomic import atomic_output
from autoice.errors import SubmissionError

if TYPE_CHECKING:
    from autoice.metrics import ScoreAccumulator, Scores
    from autoice.submission import SceneGroup, ScoreReport

PathLike = str | os.PathLike[str]

MAP_SIZE = 500  #: longest side (pixels) of the scene data drawn in the per-scene maps
MAP_DPI = 64  #: resolution of the per-scene map images (keeps 20 scenes to a few MB)
MOSAIC_SIDE = 900  #: longest side (pixels) of the mosaic grid drawn in the report
MOSAIC_DPI = 80

_METRIC = {"SIC": "R\u00b2 \u00d7100 (class indices)", "SOD": "weighted F1 \u00d7100", "FLOE": "weighted F1 \u00d7100",
           "combined": "(2 SIC + 2 SOD + FLOE) / 5"}  # fmt: skip

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}td.l,th.l{text-align:left}
.meta{color:#555;font-size:.9em}.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.5em 1em}
.zero{color:#b00}.cms{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
"""


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{_png_uri(png)}" alt="{html.escape(alt)}">'


def _num(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "nan"


def _score_cells(res: Scores) -> str:
    cells = []
    for chart in (*schema.CHARTS, "combined"):
        v = res.combined if chart == "combined" else res.charts[chart]
        cls = ' class="zero"' if chart in res.missing else ""
        cells.append(f"<td{cls}>{_num(v)}</td>")
    return "".join(cells)


def _overall_table(res: Scores) -> str:
    rows = ['<tr><th class="l">chart</th><th>score</th><th class="l">metric</th><th>valid pixels</th></tr>']
    for chart in (*schema.CHARTS, "combined"):
        v = res.combined if chart == "combined" else res.charts[chart]
        pixels = f"{res.n_valid[chart]:,}" if chart in schema.CHARTS else ""
        note = " (missing: scored 0)" if chart in res.missing else ""
        rows.append(f'<tr><td class="l">{chart}</td><td>{_num(v)}</td>'
                    f'<td class="l">{html.escape(_METRIC[chart] + note)}</td><td>{pixels}</td></tr>')  # fmt: skip
    return '<table class="overall">' + "".join(rows) + "</table>"


def _scene_table(scenes: dict[str, ScoreAccumulator], mapped: set[str]) -> str:
    head = "".join(f"<th>{c}</th>" for c in (*schema.CHARTS, "combined"))
    rows = [f'<tr><th class="l">scene</th>{head}<th>valid SIC pixels</th><th class="l">missing</th></tr>']
    for key, acc in scenes.items():
        res = acc.result()
        name = f'<a href="#{key}">{key}</a>' if key in mapped else key
        rows.append(f'<tr><td class="l">{name}</td>{_score_cells(res)}<td>{res.n_valid["SIC"]:,}</td>'
                    f'<td class="l">{", ".join(res.missing)}</td></tr>')  # fmt: skip
    return '<table class="scenes">' + "".join(rows) + "</table>"


def _group_table(grouping: str, groups: list[SceneGroup]) -> str:
    """One row per group: scenes, the four scores (a dash where a chart has no valid pixel) and valid pixels."""
    head = "".join(f"<th>{c}</th>" for c in (*schema.CHARTS, "combined"))
    head += "".join(f"<th>{c} pixels</th>" for c in schema.CHARTS)
    rows = [f'<tr><th class="l">{grouping}</th><th>scenes</th>{head}<th class="l">missing</th></tr>']
    for g in groups:
        res = g.scores
        cells = []
        for chart in (*schema.CHARTS, "combined"):
            v = res.combined if chart == "combined" else res.charts[chart]
            cls = ' class="zero"' if chart in res.missing else ""
            cells.append(f"<td{cls}>{_num(v)}</td>" if math.isfinite(v) else "<td>\u2013</td>")
        pixels = "".join(f"<td>{res.n_valid[c]:,}</td>" for c in schema.CHARTS)
        scenes = html.escape(", ".join(g.keys))
        rows.append(f'<tr><td class="l">{html.escape(g.label)}</td><td title="{scenes}">{len(g.keys)}</td>'
                    f'{"".join(cells)}{pixels}<td class="l">{", ".join(res.missing)}</td></tr>')  # fmt: skip
    return f'<table class="groups" id="by-{grouping}">' + "".join(rows) + "</table>"


def _class_table(acc: ScoreAccumulator, chart: str) -> str:
    """Precision / recall / F1 / support per class; a dash where a figure is undefined (class never seen)."""
    st = acc.charts[chart].per_class()
    predicted = acc.charts[chart].confusion_matrix().sum(axis=0)
    rows = ['<tr><th class="l">class</th><th class="l">name</th><th>precision</th><th>recall</th><th>F1</th>'
            "<th>support (pixels)</th><th>predicted (pixels)</th></tr>"]  # fmt: skip
    for k, name in enumerate(schema.CLASS_NAMES[chart]):
        defined = (predicted[k] > 0, st.support[k] > 0, predicted[k] + st.support[k] > 0)
        values = (st.precision[k], st.recall[k], st.f1[k])
        figures = "".join(f"<td>{v:.3f}</td>" if ok else "<td>\u2013</td>"
                          for v, ok in zip(values, defined, strict=True))  # fmt: skip
        rows.append(f'<tr><td class="l">{k}</td><td class="l">{html.escape(name)}</td>{figures}'
                    f"<td>{int(st.support[k]):,}</td><td>{int(predicted[k]):,}</td></tr>")  # fmt: skip
    return f'<table class="perclass" id="perclass-{chart}">' + "".join(rows) + "</table>"


def _scene_map(prediction: Path, key: str, reference: Path) -> bytes:
    """Reference | prediction | error of one scene (inputs row when the scene's inputs are at hand)."""
    from autoice.plots import figure_png, load_scene_view, read_prediction_view, scene_figure

    view = load_scene_view(reference, max_size=MAP_SIZE)
    pred = read_prediction_view(prediction, view, missing_ok=True)
    return figure_png(scene_figure(view, pred, title=key, source=prediction), dpi=MAP_DPI)


def _mosaic(prediction: Path, report: ScoreReport) -> tuple[bytes | None, str]:
    """The predicted scenes as one map (PNG), and a caption; (None, why not) when it cannot be drawn.

    Tie points come from each scene's ``_prep.nc`` beside its reference; scenes with a missing
    chart are left out (listed in the caption).
    """
    from autoice.errors import AutoiceError
    from autoice.export import SceneSource
    from autoice.geolocation import DEFAULT_CRS
    from autoice.maps import map_figure, mosaic_view
    from autoice.mosaic import build_mosaic
    from autoice.plots import figure_png

    sources, skipped = [], []
    for key, ref in report.references.items():
        scene = Path(ref).with_name(key + schema.RTT_SUFFIX)
        if report.scenes[key].missing or not scene.is_file():
            skipped.append(key)
        else:
            sources.append(SceneSource(key, prediction, scene, predicted=True))
    if not sources:
        return None, ("no map of the predicted scenes: no tie points (the scenes' _prep.nc are not beside "
                      "the references)")  # fmt: skip
    try:
        m = build_mosaic(sources, crs=DEFAULT_CRS, resolution=None, progress=False)
    except AutoiceError as exc:
        return None, f"no map of the predicted scenes: {exc}"
    png = figure_png(map_figure(mosaic_view(m, title=f"predictions: {prediction.name}"), max_size=MOSAIC_SIDE),
                     dpi=MOSAIC_DPI)  # fmt: skip
    caption = (f"{len(m.scenes)} predicted scenes warped by their tie points onto {DEFAULT_CRS} at "
               f"{m.resolution / 1000:g} km (newest scene on top where they overlap), as `autoice mosaic` makes it")
    if skipped:
        caption += f"; left out (a chart missing or no _prep.nc): {', '.join(skipped)}"
    return png, caption


def write_report(
    prediction: PathLike,
    reference: Sequence[PathLike],
    out_html: PathLike,
    *,
    max_scenes: int | None = None,
    by: Iterable[str] = (),
    progress: bool = False,
) -> Path:
    """Score ``prediction`` against ``reference`` and write one self-contained HTML page.

    Args:
        prediction: the ``upload_package.nc``.
        reference: ``*_prep_reference.nc`` files, RTT files with charts, or folders of them.
        out_html: the page to write (atomically).
        max_scenes: draw maps of the first N scenes only (all scenes are scored and tabled).
        by: groupings (:data:`autoice.schema.GROUPINGS`) to add a table of scores per group for
            (:func:`autoice.submission.score_groups`).
        progress: progress bar on stderr while drawing maps.

    Returns:
        ``out_html``. Raises SubmissionError / SceneError naming the bad file.
    """
    from tqdm import tqdm

    from autoice.plots import confusion_figure, figure_png
    from autoice.submission import score_groups, score_submission

    sub = Path(prediction)
    if max_scenes is not None and max_scenes < 0:
        raise ValueError(f"max_scenes must be >= 0, got {max_scenes}")
    by = tuple(dict.fromkeys(by))
    unknown = [g for g in by if g not in schema.GROUPINGS]
    if unknown:
        raise ValueError(f"unknown grouping(s) {unknown}; expected some of {schema.GROUPINGS}")
    report = score_submission(sub, list(reference))
    n_missing_scenes = sum(len(acc.missing) == len(schema.CHARTS) for acc in report.scenes.values())
    if n_missing_scenes == len(report.scenes):
        raise SubmissionError(
            sub, f"holds none of the {len(report.scenes)} reference scenes (is --reference the right folder?)"
        )
    pooled = report.pooled
    res = pooled.result()
    keys = list(report.scenes)[: len(report.scenes) if max_scenes is None else max_scenes]
    maps = {}
    for key in tqdm(keys, desc="maps", unit="scene", disable=not progress, leave=False):
        maps[key] = _scene_map(sub, key, report.references[key])
    cms = {c: figure_png(confusion_figure(pooled.charts[c].confusion_matrix(), c)) for c in schema.CHARTS}
    groups = {g: score_groups(report, g) for g in by}
    overview = _mosaic(sub, report)
    page = _page(report, res, sub, reference, maps, cms, groups, overview)
    target = Path(out_html)
    with atomic_output(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target


_PROVENANCE_LABELS = {"autoice_model": "model", "autoice_model_version": "registered version",
                      "autoice_run_id": "MLflow run", "source": "software", "date_created": "predicted",
                      "autoice_scenes": "scenes"}  # fmt: skip


def _provenance_block(sub: Path) -> str:
    """Which model (version, run) and software made the predictions, from the submission's attributes."""
    from autoice.submission import read_provenance

    attrs = read_provenance(sub)
    if not attrs:
        return '<p class="meta">provenance: not recorded (the submission was not written by autoice predict)</p>'
    rows = "".join(f'<tr><td class="l">{html.escape(_PROVENANCE_LABELS[k])}</td><td class="l">{html.escape(v)}'
                   "</td></tr>" for k, v in attrs.items())  # fmt: skip
    return f'<h2>Provenance</h2><table class="provenance">{rows}</table>'


def _page(
    report: ScoreReport, res: Scores, sub: Path, reference: Sequence[PathLike], maps: dict[str, bytes],
    cms: dict[str, bytes], groups: dict[str, list[SceneGroup]], overview: tuple[bytes | None, str] = (None, ""),
) -> str:  # fmt: skip
    from autoice import __version__

    esc = html.escape
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>AutoICE report: {esc(sub.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>AutoICE report: {esc(sub.name)}</h1>",
        f'<p class="meta">prediction {esc(str(sub))}<br>reference {esc(", ".join(str(r) for r in reference))}<br>'
        f"{len(report.scenes)} scenes; written {esc(now)} by autoice {esc(__version__)}</p>",
    ]
    parts.append(_provenance_block(sub))
    problems = [f"{p}; its chart scores 0 (as on the challenge server)" for p in report.problems]
    problems += [f"{n}: in the submission but matches no reference scene (ignored)" for n in report.extra]
    if problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in problems)
        parts.append(f'<div class="warn"><b>{len(problems)} warning(s)</b><ul>{items}</ul></div>')
    parts += [
        "<h2>Score</h2>",
        "<p>All scenes pooled, pixels whose reference is masked (255) left out, as the challenge server scored.</p>",
        _overall_table(res),
    ]
    for grouping, rows in groups.items():
        note = f"; seasons: {schema.describe_seasons()}" if grouping == "season" else ""
        parts += [
            f"<h2>Score by {grouping}</h2>",
            f"<p>Each group's scenes pooled as above; \u2013 = no valid reference pixel in the group{esc(note)}.</p>",
            _group_table(grouping, rows),
        ]
    parts += [
        "<h2>Scenes</h2>",
        _scene_table(report.scenes, set(maps)),
        "<h2>Per class (all scenes)</h2>",
    ]
    for chart in ("SOD", "FLOE", "SIC"):
        parts += [f"<h3>{chart}: {esc(schema.CHART_DESCRIPTIONS[chart])}</h3>", _class_table(report.pooled, chart)]
    png, caption = overview
    parts.append('<h2 id="mosaic">All scenes on one map</h2>')
    if png is not None:
        parts.append(f'<figure>{_img(png, "mosaic of the predicted scenes")}<figcaption>{esc(caption)}'
                     "</figcaption></figure>")  # fmt: skip
    else:
        parts.append(f'<p class="meta">{esc(caption)}</p>')
    parts += ["<h2>Confusion matrices (all scenes)</h2>", '<div class="cms">']
    parts += [f"<figure>{_img(png, f'{c} confusion matrix')}</figure>" for c, png in cms.items()]
    parts.append("</div>")
    if maps:
        shown = f" (first {len(maps)} of {len(report.scenes)})" if len(maps) < len(report.scenes) else ""
        parts.append(f"<h2>Maps{shown}</h2>")
        for key, png in maps.items():
            s = report.scenes[key].result()
            caption = ", ".join(f"{c} {_num(s.charts[c])}" for c in schema.CHARTS) + f", combined {_num(s.combined)}"
            parts.append(f'<figure id="{key}"><h3>{key}</h3>{_img(png, f"{key} maps")}'
                         f"<figcaption>{esc(caption)}</figcaption></figure>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
