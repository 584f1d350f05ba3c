"""``autoice predict``: whole test scenes -> upload_package.nc."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("predict")
@click.option("--model", "models", required=True, multiple=True,
              help="Training workdir, checkpoint (.pt) or MLflow URI (models:/autoice@champion, runs:/<id>/model); "
              "repeat for an ensemble.")
@click.option("--data", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Test scenes (*_prep.nc): files or folders.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Submission file to write (upload_package.nc).")
@click.option("--tta", is_flag=True, help="Test-time augmentation: average the four flips.")
@click.option("--max-memory", default=3.0, show_default=True, type=click.FloatRange(0.5),
              help="Memory budget in GB; scenes are tiled (with overlap blending) to fit it.")
@click.option("--uncertainty", "uncertainty_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write per-pixel uncertainty maps (<scene>_uncertainty.nc) into this folder.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N; with --scheduler, the device of each worker (one model per worker).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Scenes predicted in parallel (local processes, each with its own copy of the model).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow store that models:/ and runs:/ URIs are looked up in (sqlite:///WORKDIR/mlflow.db, "
              "http://HOST:5000). Default: MLFLOW_TRACKING_URI, else the mlflow.db of a training workdir given "
              "as --model.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(models: tuple[str, ...], data: tuple[Path, ...], output: Path, tta: bool, max_memory: float,
            uncertainty_dir: Path | None, device: str, tracking_uri: str | None, workers: int, quiet: bool,
            scheduler: str | None) -> None:  # fmt: skip
    """Predict SIC, SOD and FLOE for every test scene and write the challenge submission file.

    The file is checked with the same rules as `autoice validate` before the command returns. A bad
    test scene does not stop the others; each is reported and no submission is written.
    """
    from autoice.errors import ScenesFailed
    from autoice.predict import predict
    from autoice.tracking import model_store_uri

    store = model_store_uri(tracking_uri, models)
    try:
        result = predict(list(models), list(data), output, tta=tta, max_memory_gb=max_memory,
                         uncertainty_dir=uncertainty_dir, device=device, progress=not quiet,
                         tracking_uri=store, workers=workers, scheduler=scheduler)  # fmt: skip
    except ScenesFailed as exc:  # no submission; say which per-scene outputs the good scenes left
        if exc.partial is not None and exc.partial.uncertainty:
            click.echo(f"uncertainty maps: {uncertainty_dir} ({len(exc.partial.uncertainty)} files)")
        raise
    click.echo(f"wrote {result.output} ({len(result.scenes)} scenes, {3 * len(result.scenes)} variables)")
    if result.uncertainty:
        click.echo(f"uncertainty maps: {uncertainty_dir} ({len(result.uncertainty)} files)")
