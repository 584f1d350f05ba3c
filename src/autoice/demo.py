"""The embedded default, end to end on a fresh machine: synth -> train -> register -> predict -> score -> report.

Everything lands in one folder (default ``demo/``)::

    data/{raw,train,test}   synthetic scenes (the test folder holds the *_prep_reference.nc files)
    checkpoints/, cache/, config.yaml, mlflow.db, mlartifacts/   the training run and its MLflow store
    upload_package.nc       the submission for the test scenes
    score.json              SIC, SOD, FLOE, combined (percent)
    figures/*.png, report.html
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "autoice"


@dataclass
class DemoResult:
    """Where the demo put things, its scores and how long each step took."""

    workdir: Path
    scores: dict[str, float]
    timings: dict[str, float]
    model_uri: str


def run_demo(workdir: str | Path = "demo", *, n_train: int = 16, n_test: int = 4, height: int = 400,
             width: int = 448, seed: int = 0, overrides: tuple[str, ...] = (), workers: int = 2,
             progress: bool = True) -> DemoResult:  # fmt: skip
    """Run the whole product on synthetic scenes; see the module docstring for the outputs."""
    from autoice.locks import hold

    with hold(workdir, "autoice demo"):
        return _run_demo(Path(workdir), n_train=n_train, n_test=n_test, height=height, width=width, seed=seed,
                         overrides=overrides, workers=workers, progress=progress)  # fmt: skip


def _run_demo(work: Path, *, n_train: int, n_test: int, height: int, width: int, seed: int,
              overrides: tuple[str, ...], workers: int, progress: bool) -> DemoResult:  # fmt: skip
    """:func:`run_demo`, with the workdir held."""
    from autoice import report, submission, synth
    from autoice.atomic import atomic_output
    from autoice.config import load_config
    from autoice.plots import show_scene
    from autoice.predict import predict
    from autoice.tracking import tracking_uri
    from autoice.train import train

    data = work / "data"
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        timings[name] = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    step("synth")
    synth.synthesize(data, n_train=n_train, n_test=n_test, height=height, width=width, seed=seed, workers=workers,
                     progress=progress)  # fmt: skip
    step("train")
    cfg = load_config("demo", overrides=list(overrides))
    trained = train(cfg, data / "train", work, progress=progress, register=MODEL_NAME)
    step("predict")
    model_uri = f"models:/{MODEL_NAME}@champion"
    package = work / "upload_package.nc"
    predict(model_uri, data / "test", package, progress=progress, tracking_uri=tracking_uri(work))
    step("score")
    rep = submission.score_submission(package, data / "test")
    scores = rep.pooled.result().as_dict()
    with atomic_output(work / "score.json") as tmp:
        tmp.write_text(json.dumps(scores, indent=2) + "\n")
    step("figures")
    figures = work / "figures"
    for ref in sorted((data / "test").glob("*_prep_reference.nc")):
        key = ref.name[:19]
        show_scene(data / "test" / f"{key}_prep.nc", figures / f"{key}.png", prediction=package)
    report.write_report(package, [data / "test"], work / "report.html")
    timings = {name: (list(timings.values()) + [time.perf_counter()])[i + 1] - t
               for i, (name, t) in enumerate(timings.items())}  # fmt: skip
    timings["total"] = time.perf_counter() - t_start
    print(f"best validation combined score: {trained.best_score:.3f}", file=sys.stderr)
    return DemoResult(work, scores, timings, model_uri)
