"""``autoice train``: train a model on ready-to-train scenes, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("train")
@click.option("--preset", default=None, help="Preset name: baseline, mmseaice or demo (default baseline).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML config file (may name a base 'preset:').")
@click.option("--data", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Training scenes (*_prep.nc with charts): files or folders; repeatable.")
@click.option("--val-data", multiple=True, type=click.Path(path_type=Path),
              help="Validation scenes; without it a seeded share (data.val_fraction) of --data is held out.")
@click.option("--workdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: checkpoints, config, cache and the MLflow store (sqlite:///WORKDIR/mlflow.db).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.lr=1e-3 (repeatable).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Patch cache folder (default WORKDIR/cache).")
@click.option("--resume", is_flag=True, help="Continue the run in WORKDIR from checkpoints/last.pt.")
@click.option("--register", default=None, metavar="NAME",
              help="Log the best model as an MLflow pyfunc model, register it as NAME and point the alias "
              "'champion' at the best version by validation score.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@scheduler_option
def command(
    preset: str | None,
    config_file: Path | None,
    data: tuple[Path, ...],
    val_data: tuple[Path, ...],
    workdir: Path,
    overrides: tuple[str, ...],
    cache_dir: Path | None,
    resume: bool,
    register: str | None,
    quiet: bool,
    scheduler: str | None,
) -> None:
    """Train the multi-task U-Net (SIC, SOD, FLOE) with the official metric as validation.

    Launch several processes (CPU or GPUs, one or several nodes) with torchrun:
    torchrun --nproc_per_node 2 -m autoice train --preset mmseaice --data DIR --workdir runs/mm
    With --scheduler, the patch cache (one task per scene) is built on that Dask cluster first.
    """
    from autoice.config import load_config
    from autoice.errors import ConfigError
    from autoice.tracking import is_local_store
    from autoice.train import train

    if resume:
        saved = workdir / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{saved}: nothing to resume (no config.yaml in the workdir)")
        if preset or config_file:
            raise ConfigError("--resume takes the run's saved config; use --set to change it, not --preset/--config")
        cfg = load_config(config_file=saved, overrides=overrides)
    else:
        cfg = load_config(preset, config_file, overrides)
    import os

    result = train(cfg, list(data), workdir, val_data=list(val_data) or None, cache_dir=cache_dir, resume=resume,
                   progress=not quiet, register=register, scheduler=scheduler)  # fmt: skip
    if int(os.environ.get("RANK", "0")) != 0:
        return
    best = f"{result.best_score:.3f}" if result.best_score > -float("inf") else "n/a"
    click.echo(f"best validation combined score: {best}")
    click.echo(f"best checkpoint: {result.best_checkpoint}")
    click.echo(f"last checkpoint: {result.last_checkpoint}")
    if result.run_url:
        click.echo(f"MLflow run: {result.run_id}  ({result.run_url})")
    elif result.tracking_uri and is_local_store(result.tracking_uri):
        click.echo(f"MLflow run: {result.run_id}  (mlflow ui --backend-store-uri {result.tracking_uri})")
    else:
        click.echo(f"MLflow run: {result.run_id}  (in {result.tracking_uri})")
    if result.replica_max_diff is not None:
        click.echo(f"DDP replicas max |weight difference|: {result.replica_max_diff:.3g}")
