"""``autoice evaluate``: a logged model scored on scenes with charts by ``mlflow.models.evaluate``."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli import jsonout
from autoice.cli.cluster import scheduler_option


@click.command("evaluate")
@click.argument("model")
@click.option("--data", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Scenes with charts: training scenes (*_prep.nc with SIC/SOD/FLOE) or test scenes with their "
              "*_prep_reference.nc; files or folders. Repeatable.")  # fmt: skip
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow store the model is looked up in and the evaluation run is logged to "
              "(sqlite:///WORKDIR/mlflow.db, http://HOST:5000). Default: MLFLOW_TRACKING_URI, else the "
              "mlflow.db of a training workdir given as MODEL (the rule of predict and serve).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@scheduler_option
def command(model: str, data: tuple[Path, ...], tracking_uri: str | None, as_json: bool, quiet: bool,
            scheduler: str | None) -> None:  # fmt: skip
    """Score MODEL (models:/autoice@champion, runs:/<id>/model or a model folder) with mlflow.models.evaluate.

    Each scene is predicted in one pass at the model's resolution, as the served model does; the
    challenge score (SIC R2, SOD and FLOE weighted F1, combined; percent) and the confusion
    matrices are logged to a new MLflow run (experiment MLFLOW_EXPERIMENT_NAME, default autoice)
    and attached to the logged model.
    """
    from autoice.evaluation import METRICS, evaluate
    from autoice.tracking import model_store_uri

    result = evaluate(model, list(data), tracking_uri=model_store_uri(tracking_uri, [model]),
                      progress=not (quiet or as_json), scheduler=scheduler)  # fmt: skip
    if as_json:
        click.echo(jsonout.dumps({**result.metrics, "run_id": result.run_id, "tracking_uri": result.tracking_uri,
                                  "scenes": result.scenes, "artifacts": result.artifacts}))  # fmt: skip
        return
    click.echo(f"evaluated {model} on {len(result.scenes)} scenes")
    click.echo("  ".join(f"{m}={result.metrics[m]:.3f}" for m in METRICS))
    where = result.run_url or result.tracking_uri
    click.echo(f"MLflow run: {result.run_id}  ({where}; artifacts: {', '.join(result.artifacts)})")
