"""``autoice demo``: the whole product on synthetic scenes, in one command."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.demo import N_TRAIN


@click.command("demo")
@click.option("--workdir", default=Path("demo"), show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for everything the demo makes.")
@click.option("--train", "n_train", default=N_TRAIN, show_default=True, type=click.IntRange(2), help="Training scenes.")
@click.option("--test", "n_test", default=4, show_default=True, type=click.IntRange(1), help="Test scenes.")
@click.option("--height", default=400, show_default=True, type=click.IntRange(64), help="Scene lines at 80 m.")
@click.option("--width", default=448, show_default=True, type=click.IntRange(64), help="Scene samples at 80 m.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override the demo preset.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(workdir: Path, n_train: int, n_test: int, height: int, width: int, seed: int,
            overrides: tuple[str, ...], quiet: bool) -> None:  # fmt: skip
    """Synthesise scenes, train the demo preset, register, predict, score and draw: a few minutes on 2 cores."""
    from autoice.demo import run_demo
    from autoice.tracking import is_local_store, tracking_uri

    r = run_demo(workdir, n_train=n_train, n_test=n_test, height=height, width=width, seed=seed,
                 overrides=overrides, progress=not quiet)  # fmt: skip
    w = r.workdir
    s = r.scores
    uri = tracking_uri(w)  # the workdir's store unless MLFLOW_TRACKING_URI says otherwise (e.g. `mlflow run`)
    # `mlflow ui` opens a local store; a server is its own UI
    ui = f"MLflow UI:  mlflow ui --backend-store-uri {uri}" if is_local_store(uri) else f"MLflow UI:  {uri}"
    click.echo(f"\nscore on {n_test} synthetic test scenes: combined {s['combined']:.3f}  "
               f"(SIC R² {s['SIC']:.3f}, SOD F1 {s['SOD']:.3f}, FLOE F1 {s['FLOE']:.3f})")  # fmt: skip
    click.echo("took " + ", ".join(f"{k} {v:.0f} s" for k, v in r.timings.items()))
    click.echo(f"""
everything is in {w}/:
  data/                 synthetic raw, train and test scenes (test references beside the test scenes)
  upload_package.nc     the submission (autoice validate {w}/upload_package.nc --data {w}/data/test)
  score.json            the official scores
  report.html           scores, per-class F1, confusion matrices and maps in one page
  figures/              maps of each test scene: inputs, reference, prediction, errors
  gis/                  the predictions on a map (EPSG:3413, open in QGIS): <scene>_{{SIC,SOD,FLOE}}.tif at
                        {r.export_resolution:g} m, and all test scenes on one map at {r.mosaic_resolution:g} m:
                        mosaic_{{SIC,SOD,FLOE}}.tif and its quicklook {w}/gis/mosaic.png
  checkpoints/best.pt   the best model; registered in MLflow as {r.model_uri}
{ui}
Serve it:   autoice serve -m {r.model_uri} --tracking-uri {uri}""")
