"""A seeded fuzzer for the CLI: mutate small valid files and arguments, run every command, judge the result.

Each case runs ``autoice <command> ...`` in-process through :func:`autoice.cli.main.main` and must end
in one of two ways: exit 0 with a correct output, or exit 1 with exactly one ``autoice: error:``
line. A traceback (an exception escaping ``main``), a hang (past the per-case timeout), another
exit status or a temporary file left behind is a failure. ``tests/test_fuzz.py`` runs a small
seeded campaign in the suite; ``bench/fuzz.py`` runs a large one and prints the per-command table.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import signal
import socket
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

#: the rows of the table: every CLI command (``autoice.cli.main.COMMANDS``) has one
COMMANDS = ("inspect", "prepare", "train", "predict", "score", "validate", "show", "report", "synth", "demo",
            "serve", "download", "export", "label", "mosaic", "evaluate")
TINY_TRAIN = ["--preset", "demo", "--set", "train.epochs=1", "--set", "train.batches_per_epoch=1",
              "--set", "data.patch_size=32", "--set", "model.filters=[8, 8, 16]", "--set", "data.downscale=2",
              "--set", "train.batch_size=2", "--quiet"]  # fmt: skip


# ----------------------------------------------------------------------------- the valid corpus
@dataclass
class Corpus:
    """Small valid files of every kind the commands read."""

    root: Path
    raw: Path
    train: list[Path]
    test: Path
    reference: Path
    submission: Path
    checkpoint: Path
    model: Path  #: the checkpoint logged as an MLflow model (a local model folder)


def make_corpus(root: Path) -> Corpus:
    """Synthesize 2 train + 1 test scenes of 64 x 64, a tiny checkpoint (also as an MLflow model), a submission."""
    from autoice import schema, synth
    from autoice.config import load_config
    from autoice.submission import write_submission
    from autoice.train import train

    data = root / "data"
    synth.synthesize(data, n_train=2, n_test=1, height=64, width=64, seed=11, progress=False)
    work = root / "run"
    cfg = load_config("demo", overrides=[a for a in TINY_TRAIN if "=" in a])
    result = train(cfg, data / "train", work, progress=False)
    test = sorted((data / "test").glob("*_prep.nc"))[0]
    model = _logged_model(result, test, root / "model")
    reference = sorted((data / "test").glob("*_prep_reference.nc"))[0]
    key = test.name[: schema.SCENE_KEY_LENGTH]
    rng = np.random.default_rng(0)
    with xr.open_dataset(reference) as ref:
        shape = ref[schema.CHARTS[0]].shape
    preds = {key: {c: rng.integers(0, schema.N_CLASSES[c], shape).astype(np.uint8) for c in schema.CHARTS}}
    sub = write_submission(preds, root / "upload_package.nc")
    return Corpus(root, sorted((data / "raw").glob("*.nc"))[0], sorted((data / "train").glob("*_prep.nc")), test,
                  reference, sub, work / "checkpoints" / "best.pt", model)  # fmt: skip


def _logged_model(result: object, scene: Path, folder: Path) -> Path:
    """The run's best checkpoint logged as its pyfunc model, downloaded into ``folder``."""
    import mlflow

    from autoice import serving
    from autoice.tracking import use_store

    uri = serving.log_model(result.best_checkpoint, tracking_uri=result.tracking_uri, run_id=result.run_id,
                            example_scene=scene, progress=False)  # fmt: skip
    with use_store(result.tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder)))


# ----------------------------------------------------------------------------- mutations
def _load(path: Path) -> xr.Dataset:
    with xr.open_dataset(path, decode_cf=False, decode_times=False, mask_and_scale=False) as ds:
        return ds.load()


def _numeric(ds: xr.Dataset) -> list[str]:
    return [n for n, v in ds.variables.items() if v.dtype.kind in "iuf" and v.size > 0]


def truncate(src: Path, dst: Path, rng: np.random.Generator) -> str:
    data = src.read_bytes()
    cut = int(len(data) * rng.uniform(0.05, 0.95))
    dst.write_bytes(data[:cut])
    return f"truncated to {cut} of {len(data)} bytes"


def flip_bytes(src: Path, dst: Path, rng: np.random.Generator) -> str:
    data = bytearray(src.read_bytes())
    n = int(rng.integers(1, 16))
    start = len(data) // 3  # past the superblock, mostly compressed chunks
    at = rng.integers(start, len(data), n)
    for i in at:
        data[i] ^= int(rng.integers(1, 256))
    dst.write_bytes(bytes(data))
    return f"{n} bytes flipped"


def empty(src: Path, dst: Path, rng: np.random.Generator) -> str:
    dst.write_bytes(b"" if rng.random() < 0.5 else b"not a netCDF file\n" * 10)
    return "empty or text"


def drop_variable(src: Path, dst: Path, rng: np.random.Generator) -> str:
    ds = _load(src)
    name = str(rng.choice(list(ds.variables)))
    ds.drop_vars(name).to_netcdf(dst)
    return f"dropped {name}"


def change_dtype(src: Path, dst: Path, rng: np.random.Generator) -> str:
    ds = _load(src)
    name = str(rng.choice(_numeric(ds)))
    dtype = str(rng.choice(["int8", "int64", "float64", "uint16", "float16"]))
    ds[name] = ds[name].astype(dtype if dtype != "float16" else "float32") if dtype != "int8" else \
        ds[name].clip(-100, 100).astype("int8")  # fmt: skip
    ds.to_netcdf(dst)
    return f"{name} as {dtype}"


def change_shape(src: Path, dst: Path, rng: np.random.Generator) -> str:
    ds = _load(src)
    name = str(rng.choice([n for n in _numeric(ds) if ds[n].ndim >= 1 and ds[n].shape[0] > 1]))
    var = ds[name]
    cut = var.values[: max(1, var.shape[0] - int(rng.integers(1, 4)))]
    if rng.random() < 0.3:
        cut = cut[..., None]
    ds = ds.drop_vars(name)
    ds[name] = (tuple(f"fuzz_{i}" for i in range(cut.ndim)), cut, dict(var.attrs))
    ds.to_netcdf(dst)
    return f"{name} reshaped to {cut.shape}"


def change_attribute(src: Path, dst: Path, rng: np.random.Generator) -> str:
    ds = _load(src)
    if not ds.attrs:
        ds.attrs["fuzz"] = "x"
        ds.to_netcdf(dst)
        return "attribute added"
    name = str(rng.choice(sorted(ds.attrs)))
    how = rng.integers(3)
    if how == 0:
        del ds.attrs[name]
    elif how == 1:
        ds.attrs[name] = "garbage \u00e9\u00e9"
    else:
        ds.attrs[name] = np.int32(-7)
    ds.to_netcdf(dst)
    return f"attribute {name} {['deleted', 'garbled', 'a number'][how]}"


def poison(src: Path, dst: Path, rng: np.random.Generator) -> str:
    ds = _load(src)
    floats = [n for n in _numeric(ds) if ds[n].dtype.kind == "f"]
    if not floats:
        return out_of_range(src, dst, rng)
    name = str(rng.choice(floats))
    values = ds[name].values.copy()
    flat = values.reshape(-1)
    k = int(rng.integers(1, max(2, flat.size // 10)))
    flat[rng.integers(0, flat.size, k)] = rng.choice([np.nan, np.inf, -np.inf])
    ds[name] = (ds[name].dims, values, ds[name].attrs)
    ds.to_netcdf(dst)
    return f"{k} NaN/Inf in {name}"


def out_of_range(src: Path, dst: Path, rng: np.random.Generator) -> str:
    ds = _load(src)
    ints = [n for n in _numeric(ds) if ds[n].dtype.kind in "iu"] or _numeric(ds)
    name = str(rng.choice(ints))
    values = ds[name].values.copy()
    flat = values.reshape(-1)
    flat[rng.integers(0, flat.size, int(rng.integers(1, 20)))] = 200 if values.dtype.kind == "u" else -5
    ds[name] = (ds[name].dims, values, ds[name].attrs)
    ds.to_netcdf(dst)
    return f"out-of-range values in {name}"


FILE_MUTATIONS: dict[str, Callable[[Path, Path, np.random.Generator], str]] = {
    "truncate": truncate, "flip": flip_bytes, "empty": empty, "drop": drop_variable, "dtype": change_dtype,
    "shape": change_shape, "attribute": change_attribute, "nan": poison, "range": out_of_range,
}  # fmt: skip


def mutate_checkpoint(src: Path, dst: Path, rng: np.random.Generator) -> str:
    import torch

    how = int(rng.integers(5))
    if how == 0:
        return truncate(src, dst, rng)
    if how == 1:
        return flip_bytes(src, dst, rng)
    state = torch.load(src, map_location="cpu", weights_only=False)
    if how == 2:
        state["config"] = "model: {filters: [8, 8, 16]}"
        what = "config stored as a string"
    elif how == 3:
        state["config"]["model"]["filters"] = [16, 16, 32]
        what = "config does not match the weights"
    else:
        first = next(iter(state["model"]))
        state["model"][first] = state["model"][first].float() * float("nan")
        what = "NaN weights"
    torch.save(state, dst)
    return what


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One command line with the files it reads (made by ``setup`` in the case's folder)."""

    command: str
    what: str
    setup: Callable[[Path], list[str]]  # folder -> argv
    check: Callable[[Path, str], str | None] | None = None  # (folder, stdout) -> problem with an exit-0 result


def _mutated(src: Path, folder: Path, rng: np.random.Generator, name: str | None = None) -> tuple[Path, str]:
    kind = str(rng.choice(sorted(FILE_MUTATIONS)))
    dst = folder / (name or src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        what = FILE_MUTATIONS[kind](src, dst, rng)
    except Exception as exc:  # the mutation itself could not be written (e.g. xarray refused): truncate instead
        what = truncate(src, dst, rng) + f" (after {kind} failed: {type(exc).__name__})"
    return dst, what


def _exists(*names: str) -> Callable[[Path, str], str | None]:
    def check(folder: Path, stdout: str) -> str | None:
        missing = [n for n in names if not glob.glob(str(folder / n))]
        return f"exit 0 but no {missing}" if missing else None

    return check


def _sigrid_chart(name: str) -> Callable[[Path, str], str | None]:
    """Exit 0 must mean a chart that opens, has a CRS and whose egg codes the project's decoder reads."""

    def check(folder: Path, stdout: str) -> str | None:
        import pyogrio

        from autoice import charts, schema

        try:
            meta, _, _, values = pyogrio.raw.read(folder / name)
        except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
            return f"exit 0 but {name} does not open: {exc}"
        if not meta["crs"]:
            return f"exit 0 but {name} has no CRS"
        fields = dict(zip(meta["fields"], values, strict=True))
        header = schema.POLYGON_CODES_HEADER
        rows = [";".join(header)] + [";".join([str(i), *(str(fields[f][i]) for f in header[1:])])
                                     for i in range(len(fields["CT"]))]  # fmt: skip
        table = charts.decode_polygon_codes(rows)
        got = np.stack([table.classes[c] for c in schema.CHARTS], axis=1)
        want = np.stack([fields[c] for c in schema.CHARTS], axis=1)
        return None if np.array_equal(got, want) else f"exit 0 but {name}'s egg codes decode to other classes"

    return check


def _valid_submission(name: str) -> Callable[[Path, str], str | None]:
    def check(folder: Path, stdout: str) -> str | None:
        from autoice.submission import scene_shapes, validate_submission

        problems = validate_submission(folder / name, scene_shapes([folder / "test"]))
        return f"exit 0 but the submission is invalid: {problems[:2]}" if problems else None

    return check


def _json_lines(folder: Path, stdout: str) -> str | None:
    try:
        for line in stdout.splitlines():
            if line.strip():
                json.loads(line)
    except ValueError as exc:
        return f"--json printed invalid JSON: {exc}"
    return None


def make_cases(corpus: Corpus, seed: int, per_command: int | dict[str, int]) -> list[Case]:
    """``per_command`` cases of each command, drawn from ``seed`` (the same seed gives the same cases)."""
    counts = per_command if isinstance(per_command, dict) else dict.fromkeys(COMMANDS, per_command)
    rng = np.random.default_rng(seed)
    c = corpus
    cases: list[Case] = []

    def add(n: int, make: Callable[[np.random.Generator], Case]) -> None:
        for _ in range(n):
            cases.append(make(np.random.default_rng(rng.integers(2**32))))

    def inspect_case(r: np.random.Generator) -> Case:
        src = [c.raw, c.train[0], c.test, c.reference][int(r.integers(4))]
        as_json = bool(r.random() < 0.5)
        state: dict[str, str] = {}

        def setup(folder: Path) -> list[str]:
            f, state["what"] = _mutated(src, folder, r)
            return ["inspect", str(f), *(["--json"] if as_json else [])]

        return Case("inspect", f"{src.name[:30]}", setup, _json_lines if as_json else None)

    #: --scheduler values that fail fast (a refused port costs the connect timeout); "" means local
    schedulers = ["nonsense", "tcp://", "tcp://127.0.0.1:x", "foo://h:1", "tcp://[::1", "inproc://", "tcp://h:99999",
                  ""]

    def prepare_case(r: np.random.Generator) -> Case:
        def setup(folder: Path) -> list[str]:
            f, _ = _mutated(c.raw, folder / "raw", r)
            cluster = ["--scheduler", str(r.choice(schedulers))] if r.random() < 0.3 else []
            return ["prepare", str(f), "-o", str(folder / "out"), "--quiet", *cluster]

        return Case("prepare", "raw", setup, _exists("out/*_prep.nc"))

    def train_case(r: np.random.Generator) -> Case:
        bad_config = r.random() < 0.3

        def setup(folder: Path) -> list[str]:
            (folder / "train").mkdir()
            shutil.copy(c.train[1], folder / "train")
            args = list(TINY_TRAIN)
            if bad_config:
                key, value = [("train.lr", "nan"), ("train.batch_size", "0"), ("model.filters", "[]"),
                              ("data.inputs", "[nope]"), ("train.epochs", "-1"), ("data.patch_size", "7"),
                              ("train.seed", "1e30"), ("train.loss_weights", "{SIC: -1}")][int(r.integers(8))]
                args += ["--set", f"{key}={value}"]
                shutil.copy(c.train[0], folder / "train")
            else:
                _mutated(c.train[0], folder / "train", r)
            return ["train", *args, "--data", str(folder / "train"), "--workdir", str(folder / "run")]

        return Case("train", "config" if bad_config else "scene", setup, _exists("run/checkpoints/last.pt"))

    def predict_case(r: np.random.Generator) -> Case:
        bad_model = r.random() < 0.3

        def setup(folder: Path) -> list[str]:
            (folder / "test").mkdir()
            model = c.checkpoint
            if bad_model:
                model = folder / "model.pt"
                mutate_checkpoint(c.checkpoint, model, r)
                shutil.copy(c.test, folder / "test")
            else:
                _mutated(c.test, folder / "test", r)
            return ["predict", "--model", str(model), "--data", str(folder / "test"), "-o",
                    str(folder / "upload_package.nc"), "--quiet"]  # fmt: skip

        return Case("predict", "checkpoint" if bad_model else "scene", setup, _valid_submission("upload_package.nc"))

    def score_like(command: str) -> Callable[[np.random.Generator], Case]:
        def make(r: np.random.Generator) -> Case:
            bad_sub = r.random() < 0.6

            def setup(folder: Path) -> list[str]:
                (folder / "test").mkdir()
                sub = c.submission
                if bad_sub:
                    sub, _ = _mutated(c.submission, folder, r)
                    shutil.copy(c.reference, folder / "test")
                else:
                    _mutated(c.reference, folder / "test", r)
                if command == "score":
                    return ["score", str(sub), "--reference", str(folder / "test"), "--out", str(folder / "s")]
                if command == "validate":
                    return ["validate", str(sub), "--data", str(folder / "test")]
                return ["report", "--prediction", str(sub), "--reference", str(folder / "test"), "-o",
                        str(folder / "report.html")]  # fmt: skip

            check = {"score": _exists("s/scores.json"), "report": _exists("report.html")}.get(command)
            return Case(command, "submission" if bad_sub else "reference", setup, check)

        return make

    def show_case(r: np.random.Generator) -> Case:
        def setup(folder: Path) -> list[str]:
            src = [c.train[0], c.test][int(r.integers(2))]
            f, _ = _mutated(src, folder / "scenes", r)
            if src == c.test:
                shutil.copy(c.reference, folder / "scenes")
            extra = ["--prediction", str(c.submission)] if src == c.test and r.random() < 0.5 else []
            if r.random() < 0.3:  # a map: the scene warped by its (possibly mutated) tie points
                extra += ["--map", "--resolution", str(r.choice(["4000", "0", "-1", "1e9"]))]
            return ["show", str(f), "-o", str(folder / "scene.png"), *extra]

        return Case("show", "scene", setup, _exists("scene.png"))

    sizes = ["-3", "0", "1", "2", "3", "17", "64", "1e3", "x", "99999999999999999999"]

    def synth_case(r: np.random.Generator) -> Case:
        def setup(folder: Path) -> list[str]:
            opts = {"--train": str(r.choice(["0", "1", "-1", "two"])), "--test": str(r.choice(["0", "1", "-2"])),
                    "--height": str(r.choice(sizes)), "--width": str(r.choice(sizes)),
                    "--seed": str(r.choice(["0", "-1", "18446744073709551616", "3.5"]))}  # fmt: skip
            for k in ("--height", "--width"):  # keep valid runs small: no more than 64 x 64
                with contextlib.suppress(ValueError):
                    if int(opts[k]) > 64:
                        opts[k] = "64"
            out = folder / "afile" / "data" if r.random() < 0.1 else folder / "data"
            (folder / "afile").write_text("in the way")
            return ["synth", str(out), *[x for kv in opts.items() for x in kv], "--quiet"]

        return Case("synth", "arguments", setup, None)

    def demo_case(r: np.random.Generator) -> Case:
        def setup(folder: Path) -> list[str]:  # every draw is invalid: a valid demo takes minutes
            (folder / "afile").write_text("in the way")
            bad = [["--height", str(r.choice(["-1", "0", "63", "x"]))], ["--train", str(r.choice(["1", "-4"]))],
                   ["--set", str(r.choice(["nope=1", "train.lr=-1", "model.filters=[100000]", "=", "train.device=x"]))],
                   ["--workdir", str(folder / "afile" / "demo")], ["--seed", "-1"]]  # fmt: skip
            return ["demo", "--workdir", str(folder / "demo"), *bad[int(r.integers(len(bad)))], "--quiet"]

        return Case("demo", "arguments", setup, None)

    def serve_case(r: np.random.Generator) -> Case:
        def setup(folder: Path) -> list[str]:  # every draw is unservable: a served model runs until stopped
            (folder / "notamodel").mkdir()
            (folder / "garbled").mkdir()
            (folder / "garbled" / "MLmodel").write_text(str(r.choice(["{{{", "flavors: 7", "", "\x00\x01"])))
            model = str(r.choice([f"models:/nope@{r.integers(9)}", "runs:/0123456789abcdef/model", "models:/x/-1",
                                  str(folder / "notamodel"), str(folder / "garbled"), str(c.checkpoint),
                                  str(folder / "missing"), "s3://bucket/model", ""]))  # fmt: skip
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'none' / 'mlflow.db'}"
            return ["serve", "-m", model, "--port", str(int(r.integers(20000, 60000)))]

        return Case("serve", "model", setup, None)

    def download_case(r: np.random.Generator) -> Case:
        """Bad arguments, endpoints and manifests; the host is always a refused local port (never the internet)."""

        def setup(folder: Path) -> list[str]:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                refused = f"http://127.0.0.1:{s.getsockname()[1]}"
            os.environ["AUTOICE_DOWNLOAD_ENDPOINT"] = refused
            os.environ.pop("AUTOICE_DOWNLOAD_MANIFEST", None)
            (folder / "afile").write_text("in the way")
            out = folder / "data"
            scene = c.train[0].name
            good = {"url": "{endpoint}/datasets/x/resolve/main/{name}", "endpoint": refused,
                    "md5": {"train.tar.gz": "0" * 32, "metadata.csv": "1" * 32}, "metadata": "metadata.csv",
                    "splits": {"train": ["train.tar.gz"]}, "scenes": {"train": [scene]}}  # fmt: skip
            bad_manifests = ["{", "[]", "{}", json.dumps({**good, "url": 7}), json.dumps({**good, "md5": {"x": "z"}}),
                             json.dumps({**good, "url": "{endpoint}/{name}/{oops}"}),
                             json.dumps({**good, "splits": {"val": ["a"]}}), json.dumps({**good, "scenes": "nope"}),
                             json.dumps({**good, "splits": {"train": ["../up"]}, "md5": {"../up": "0" * 32}}),
                             json.dumps({**good, "url": refused + "/{name}"}), "\x00\xff"]  # fmt: skip
            args = ["download", str(out), "--quiet", "--retries", str(r.choice(["0", "0", "1", "-1"]))]
            how = int(r.integers(7))
            if how == 1:
                args += ["--endpoint", str(r.choice(["ftp://example.org", "not a url", "http://", "", "http://[::1",
                                                     "http://127.0.0.1:99999", refused + "/mirror/"]))]  # fmt: skip
            elif how == 2:
                (folder / "m.json").write_text(str(r.choice(bad_manifests)))
                args += ["--manifest", str(folder / "m.json")]
            elif how == 3:
                args += ["--manifest", str(r.choice([str(folder / "missing.json"), str(folder)]))]
            elif how == 4:
                args[1] = str(folder / "afile" / "data")
            elif how == 5:
                args += [str(r.choice(["--source=dtu", "--source=zenodo", "--split=val", "--timeout=nan",
                                       "--timeout=0", "--timeout=inf"]))]  # fmt: skip
            elif how == 6:  # already complete: checked on disk, exit 0 without a request
                (out / "train").mkdir(parents=True)
                shutil.copy(c.train[0], out / "train")
                (out / "metadata.csv").write_text("input_path\n")
                (folder / "m.json").write_text(json.dumps(good))
                args += ["--manifest", str(folder / "m.json"), "--split", "train"]
            return args

        def check(folder: Path, stdout: str) -> str | None:  # no host answers, so only "nothing to do" is right
            return None if "nothing downloaded" in stdout else "exit 0 although no host could be reached"

        return Case("download", "arguments", setup, check)

    def charts_source(folder: Path, what: str, r: np.random.Generator, extra: Path | None = None) -> list[str]:
        """SOURCE arguments of export/mosaic: a scenes folder (reference and test scene, one mutated when
        ``what`` names it, plus ``extra``) or a mutated submission with ``--data`` that folder."""
        scenes = folder / "scenes"
        scenes.mkdir()
        for f, kind in ((c.reference, "reference"), (c.test, "scene")):
            if what == kind:
                _mutated(f, scenes, r)
            else:
                shutil.copy(f, scenes)
        if extra is not None:
            shutil.copy(extra, scenes)
        if what == "submission":
            sub, _ = _mutated(c.submission, folder, r)
            return [str(sub), "--data", str(scenes)]
        return [str(scenes)]

    def export_case(r: np.random.Generator) -> Case:
        what = str(r.choice(["reference", "scene", "submission", "arguments"]))
        fmt = str(r.choice(["geotiff", "netcdf", "sigrid3"]))
        out = "out"
        if fmt == "sigrid3":  # one chart file; now and then a name it must refuse
            out = str(r.choice(["out/chart.shp", "out/chart.gpkg", "out/chart.GPKG", "out/chart.tif", "out/chart",
                                "out"]))  # fmt: skip

        def setup(folder: Path) -> list[str]:
            src = charts_source(folder, what, r)
            opts = ["--resolution", "4000", "--crs", "EPSG:3413"]  # the 64 x 64 miniature spans ~400 km
            if what == "arguments":
                opts = [str(r.choice(["--resolution", "--crs"])),
                        str(r.choice(["0", "-80", "nan", "EPSG:999999", "nonsense", "native", "EPSG:4326", "1e9"]))]
                if opts[0] == "--crs":
                    opts += ["--resolution", "4000"]
            return ["export", *src, "-o", str(folder / out), "--format", fmt, *opts, "--quiet"]

        if fmt == "sigrid3":
            return Case("export", what, setup, _sigrid_chart(out))
        return Case("export", what, setup, _exists("out/*.tif" if fmt == "geotiff" else "out/*.nc"))

    def label_case(r: np.random.Generator) -> Case:
        what = str(r.choice(["chart", "scene", "raw", "arguments"]))

        def setup(folder: Path) -> list[str]:
            scenes = folder / "scenes"
            scenes.mkdir()
            src = c.raw if what == "raw" else c.train[0]
            chart = fuzz_chart(src, folder / "chart", r, broken=what == "chart")
            if what in ("scene", "raw") and r.random() < 0.7:
                scene, _ = _mutated(src, scenes, r)
            else:
                scene = Path(shutil.copy(src, scenes))
            opts = ["--mode", str(r.choice(["official", "corrected"]))]
            if what == "arguments":
                opts += [str(r.choice(["--chart-crs", "--layer", "--thresholds", "--workers"])),
                         str(r.choice(["EPSG:999999", "native", "EPSG:3413", "nonsense", "0", "legacy", "x"]))]
            return ["label", str(scene), "--chart", str(chart), "-o", str(folder / "out"), "--quiet", *opts]

        return Case("label", what, setup, _exists("out/*.nc"))

    def mosaic_case(r: np.random.Generator) -> Case:
        what = str(r.choice(["reference", "scene", "submission", "arguments"]))
        name = str(r.choice(["m.tif", "m.nc"]))

        def setup(folder: Path) -> list[str]:
            src = charts_source(folder, what, r, extra=c.train[0])  # a second scene, with its own charts
            opts = ["--resolution", "4000"]
            out = name
            if what == "arguments":
                opts = [str(r.choice(["--resolution", "--crs", "--rule", "-o"])),
                        str(r.choice(["0", "-80", "nan", "EPSG:999999", "native", "EPSG:4326", "1e9", "confident",
                                      "newest", "m.png", "m"]))]  # fmt: skip
                if opts[0] == "-o":
                    out = opts.pop()
                    opts = ["--resolution", "4000"]
                elif opts[0] != "--resolution":
                    opts += ["--resolution", "4000"]
            return ["mosaic", *src, "-o", str(folder / "out" / out), *opts, "--quiet"]

        check = _exists("out/m_SIC.tif", "out/m_SOD.tif", "out/m_FLOE.tif", "out/m.png") if name == "m.tif" else \
            _exists("out/m.nc", "out/m.png")  # fmt: skip
        return Case("mosaic", what, setup, check)

    def evaluate_case(r: np.random.Generator) -> Case:
        what = str(r.choice(["reference", "scene", "model", "store"]))

        def setup(folder: Path) -> list[str]:
            (folder / "test").mkdir()
            for f, kind in ((c.reference, "reference"), (c.test, "scene")):
                if what == kind:
                    _mutated(f, folder / "test", r)
                else:
                    shutil.copy(f, folder / "test")
            model, store = str(c.model), f"sqlite:///{folder / 'mlflow.db'}"
            if what == "model":
                (folder / "garbled").mkdir()
                (folder / "garbled" / "MLmodel").write_text(str(r.choice(["{{{", "flavors: 7", "", "\x00\x01"])))
                model = str(r.choice([f"models:/nope@{r.integers(9)}", "runs:/0123456789abcdef/model",
                                      str(folder / "garbled"), str(c.checkpoint), str(folder / "missing"), ""]))
            elif what == "store":
                (folder / "afile").write_text("in the way")
                store = str(r.choice([f"sqlite:///{folder / 'afile' / 'mlflow.db'}", f"sqlite:///{folder / 'afile'}",
                                      "nonsense://x", ""]))  # fmt: skip
            os.environ.pop("MLFLOW_TRACKING_URI", None)  # the run goes where the case says, never the shell's store
            args = ["evaluate", model, "--data", str(folder / "test"), "--json", "--quiet"]
            return args + (["--tracking-uri", store] if store else [])

        def check(folder: Path, stdout: str) -> str | None:
            try:
                got = json.loads(stdout)
            except ValueError as exc:
                return f"--json printed invalid JSON: {exc}"
            return None if set(got) >= {"SIC", "SOD", "FLOE", "combined", "run_id"} else f"exit 0 but {sorted(got)}"

        return Case("evaluate", what, setup, check)

    makers = {"inspect": inspect_case, "prepare": prepare_case, "train": train_case, "predict": predict_case,
              "score": score_like("score"), "validate": score_like("validate"), "show": show_case,
              "report": score_like("report"), "synth": synth_case, "demo": demo_case,
              "serve": serve_case, "download": download_case,
              "export": export_case, "label": label_case, "mosaic": mosaic_case,
              "evaluate": evaluate_case}  # fmt: skip
    for command in COMMANDS:
        add(counts.get(command, 0), makers[command])
    return cases


def fuzz_chart(scene: Path, folder: Path, rng: np.random.Generator, *, broken: bool) -> Path:
    """A small SIGRID-3 chart over the scene's tie points (two halves of their box), or a broken one."""
    import shapely
    from pyogrio.raw import write

    from autoice import schema

    with xr.open_dataset(scene) as ds:
        lat_name = schema.TIEPOINT_LATITUDE if schema.TIEPOINT_LATITUDE in ds else "sar_grid_latitude"
        lon_name = schema.TIEPOINT_LONGITUDE if schema.TIEPOINT_LONGITUDE in ds else "sar_grid_longitude"
        lat, lon = ds[lat_name].values, ds[lon_name].values
    x0, x1, y0, y1 = float(lon.min()) - 1, float(lon.max()) + 1, float(lat.min()) - 0.5, float(lat.max()) + 0.5
    mid = (x0 + x1) / 2
    geoms = [shapely.box(x0, y0, mid, y1), shapely.box(mid, y0, x1, y1)]
    fields: dict[str, list[str]] = {f: [str(schema.NOT_FILLED)] * 2 for f in schema.POLYGON_CODES_HEADER[1:-1]}
    fields["CT"] = [str(rng.choice(["92", "46", "30", "01"])), str(rng.choice(["90", "12", "-9"]))]
    fields["SA"] = [str(rng.choice(["95", "87", "81"])), str(rng.choice(["86", "99"]))]
    fields["FA"] = [str(rng.choice(["04", "5", "08"])), str(rng.choice(["03", "-9"]))]
    fields["CF"] = ["0499", "99-9"]
    fields["POLY_TYPE"] = [str(rng.choice(["I", "W"])), str(rng.choice(["I", "L"]))]
    crs: str | None = "EPSG:4326"
    suffix = str(rng.choice([".gpkg", ".shp"]))
    fault = str(rng.choice(["attribute", "code", "crs", "empty", "far", "lines", "garbage", "type"])) if broken else ""
    if fault == "attribute":
        del fields[str(rng.choice(["CT", "SA", "FC", "POLY_TYPE"]))]
    elif fault == "code":
        fields[str(rng.choice(["CT", "CA", "SA", "FA"]))][0] = str(rng.choice(["4x", "1.5", "--", "9" * 12, "N/A"]))
    elif fault == "crs":
        crs = None
    elif fault == "empty":
        geoms, fields = [], {k: [] for k in fields}
    elif fault == "far":
        geoms = [shapely.transform(g, lambda xy: xy + np.array([120.0, -100.0])) for g in geoms]
    elif fault == "lines":
        geoms = [g.exterior for g in geoms]
    elif fault == "type":
        fields["POLY_TYPE"][0] = str(rng.choice(["X", "", "ice"]))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chart{suffix}"
    if fault == "garbage":
        path.write_bytes(rng.bytes(int(rng.integers(0, 4000))))
        return path
    kind = "LineString" if fault == "lines" else "Polygon"
    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    with warnings.catch_warnings():  # pyogrio warns when a chart is written without a CRS: that is the point
        warnings.simplefilter("ignore", UserWarning)
        write(path, wkb, [np.asarray(v, dtype=object) for v in fields.values()], list(fields), geometry_type=kind,
              crs=crs, driver="GPKG" if suffix == ".gpkg" else "ESRI Shapefile")  # fmt: skip
    return path


# ----------------------------------------------------------------------------- running and judging
@dataclass
class Outcome:
    """How one case ended."""

    case: Case
    argv: list[str]
    code: int | None
    clean: bool
    why: str = ""
    seconds: float = 0.0


class _Timeout(BaseException):
    pass


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise _Timeout

    before = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


def run_case(case: Case, folder: Path, timeout: int = 120) -> Outcome:
    """Run one case in ``folder`` (created) and judge it."""
    from autoice.cli.main import main

    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)  # setups may set variables for their case only
    argv = case.setup(folder)
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    escaped = ""
    t0 = time.perf_counter()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with _alarm(timeout), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _Timeout:
        escaped = f"hang: still running after {timeout} s"
    except BaseException as exc:  # anything escaping main() is a traceback for the user
        escaped = "traceback: " + "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1][:300]
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
    seconds = time.perf_counter() - t0
    stderr = err.getvalue()
    left = glob.glob(str(folder / "**" / ".*.tmp"), recursive=True)
    lines = stderr.replace("\r", "\n").splitlines()  # a progress bar ends with \r: a terminal shows a new line
    errors = [line for line in lines if line.startswith("autoice: error:")]
    why = escaped
    if not why and "Traceback (most recent call last)" in stderr:
        why = "traceback printed on stderr"
    elif not why and left:
        why = f"temporary file left: {Path(left[0]).name}"
    elif not why and code == 0 and case.check is not None:
        why = case.check(folder, out.getvalue()) or ""
    elif not why and code == 1 and len(errors) != 1:
        why = f"exit 1 with {len(errors)} error lines: {stderr.strip().splitlines()[-1:]!r}"
    elif not why and code == 2 and "Error:" in stderr:  # click usage errors: one line naming the option
        why = ""
    elif not why and code not in (0, 1):
        why = f"exit status {code}"
    return Outcome(case, argv, code, not why, why, seconds)


@dataclass
class Campaign:
    """Every outcome of a run of cases, and the per-command table of the issue."""

    outcomes: list[Outcome] = field(default_factory=list)

    def table(self) -> str:
        tried, clean = Counter(o.case.command for o in self.outcomes), Counter(
            o.case.command for o in self.outcomes if o.clean)  # fmt: skip
        rows = ["| command | tried | clean | failed |", "|---|---|---|---|"]
        for command in COMMANDS:
            rows.append(f"| {command} | {tried[command]} | {clean[command]} | {tried[command] - clean[command]} |")
        total = len(self.outcomes)
        good = sum(o.clean for o in self.outcomes)
        rows.append(f"| all | {total} | {good} | {total - good} |")
        return "\n".join(rows)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.clean]


def run_campaign(corpus: Corpus, seed: int, per_command: int | dict[str, int], *, timeout: int = 120,
                 progress: Callable[[Outcome], None] | None = None) -> Campaign:  # fmt: skip
    """Make the cases of ``seed`` and run each in its own temporary folder."""
    campaign = Campaign()
    with tempfile.TemporaryDirectory(prefix="fuzz-", dir=corpus.root) as tmp:
        for i, case in enumerate(make_cases(corpus, seed, per_command)):
            outcome = run_case(case, Path(tmp) / f"case{i:04d}", timeout=timeout)
            campaign.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
            shutil.rmtree(Path(tmp) / f"case{i:04d}", ignore_errors=True)
    return campaign
