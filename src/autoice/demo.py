"""The embedded default, end to end on a fresh machine: synth -> train -> register -> predict -> score -> report.

Everything lands in one folder (default ``demo/``)::

    data/{raw,train,test}   synthetic scenes (the test folder holds the *_prep_reference.nc files)
    checkpoints/, cache/, config.yaml, mlflow.db, mlartifacts/   the training run and its MLflow store
    upload_package.nc       the submission for the test scenes
    score.json              SIC, SOD, FLOE, combined (percent)
    figures/*.png, report.html
    gis/<scene>_{SIC,SOD,FLOE}.tif   the predictions as Cloud-Optimized GeoTIFFs on EPSG:3413
    gis/mosaic_{SIC,SOD,FLOE}.tif, gis/mosaic.png   all test scenes on one map (coarse: a few seconds)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MODEL_NAME = "autoice"
#: the mosaic's pixel is this many times the exported scenes' (whose is the miniatures' ground spacing)
MOSAIC_COARSENING = 4
#: Training scenes: the U-Net generalises from the variety of scenes more than from their pixels (on the
#: benchmark 120 scenes beat 40 by 3.5 combined points at the same steps), and synthesis is ~1 s a scene.
#: 120 since 2026-12-04: on four scenes neither model saw (indices 120-123) the demo model trained on 40 scored
#: 63.5 and gave SIC > 0 to 56 % of the open water; trained on 120, 84.7 and 9 %, for one more minute of synthesis.
N_TRAIN = 120


@dataclass
class DemoResult:
    """Where the demo put things, its scores and how long each step took."""

    workdir: Path
    scores: dict[str, float]
    timings: dict[str, float]
    model_uri: str
    gis: list[Path] = field(default_factory=list)  #: the GeoTIFFs and the mosaic's files
    export_resolution: float = 0.0  #: metres
    mosaic_resolution: float = 0.0  #: metres


def run_demo(workdir: str | Path = "demo", *, n_train: int = N_TRAIN, n_test: int = 4, height: int = 400,
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

    cfg = load_config("demo", overrides=list(overrides))  # a bad --set fails here, before minutes of synth
    t_start = time.perf_counter()
    step("synth")
    synth.synthesize(data, n_train=n_train, n_test=n_test, height=height, width=width, seed=seed, workers=workers,
                     progress=progress)  # fmt: skip
    step("train")
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
    step("maps")
    gis, res, coarse = _gis(package, data / "test", work / "gis", progress)
    timings = {name: (list(timings.values()) + [time.perf_counter()])[i + 1] - t
               for i, (name, t) in enumerate(timings.items())}  # fmt: skip
    timings["total"] = time.perf_counter() - t_start
    print(f"best validation combined score: {trained.best_score:.3f}", file=sys.stderr)
    return DemoResult(work, scores, timings, model_uri, gis, res, coarse)


def _gis(package: Path, test: Path, out: Path, progress: bool) -> tuple[list[Path], float, float]:
    """The predictions as GeoTIFFs and as one mosaic (files, export and mosaic resolutions in m).

    Synthetic scenes span the real ~400 km with fewer pixels than 80 m ones: the GeoTIFFs take the
    scenes' own ground spacing (rounded), not 80 m, and the mosaic a few times coarser.
    """
    from autoice.export import export
    from autoice.geolocation import ground_spacing, scene_geolocation
    from autoice.mosaic import mosaic
    from autoice.scenes import open_scene

    first = sorted(test.glob("*_prep.nc"))[0]
    with open_scene(first, check_values=False) as ds:
        spacing = ground_spacing(scene_geolocation(ds, first))
    res = float(max(80, round(spacing / 100) * 100))
    exported = export(package, out, data=test, resolution=res, progress=progress)
    made = mosaic(package, out / "mosaic.tif", data=test, resolution=res * MOSAIC_COARSENING, progress=progress)
    return exported.files + made.files, res, res * MOSAIC_COARSENING
