"""``autoice serve``: answer prediction requests for a logged model over HTTP (MLflow's protocol)."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("-m", "--model", required=True,
              help="A logged autoice model: models:/autoice@champion, models:/NAME/VERSION, runs:/<id>/model "
              "or a model folder.")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow store the model URI is looked up in (sqlite:///WORKDIR/mlflow.db, http://HOST:5000). "
              "Default: MLFLOW_TRACKING_URI.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=5001, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
def command(model: str, tracking_uri: str | None, host: str, port: int) -> None:
    """Serve a logged model: POST {"inputs": {channel: (batch, height, width) array}} to /invocations.

    The protocol is `mlflow models serve`'s (same requests, same answers), but requests that MLflow's
    server mishandles get a 4xx with a message: no Content-Type header (415), JSON nested too deeply
    (400) and channels holding booleans or strings instead of numbers (400).
    """
    from autoice.server import serve
    from autoice.tracking import model_store_uri

    serve(model, host=host, port=port, tracking_uri=model_store_uri(tracking_uri, [model]))
