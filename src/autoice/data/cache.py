"""On-disk cache of model inputs and labels: each scene read from netCDF once, then memory-mapped.

Layout: ``<cache_dir>/<fingerprint>/`` with one folder per fingerprint of what shapes the arrays
(channels, downscale, cache dtype, cache format version), and inside it per scene

- ``<key>.inputs.npy``: (C, h, w) float16/float32 inputs (:func:`autoice.data.inputs.scene_inputs`);
- ``<key>.labels.npy``: (3, h, w) uint8 charts (train scenes);
- ``<key>.json``: the source file's name, size and mtime_ns, the shapes, the valid-label counts.

The json is written last and is what makes an entry count: an entry is reused when the json
matches the source file and the fingerprint, and rebuilt otherwise. Every file is written through
:func:`autoice.atomic.atomic_output`, so an interrupted build leaves no half entry. Plain
uncompressed ``.npy`` files: a patch is a strided read from the page cache, no decompression.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from autoice import schema
from autoice.atomic import atomic_output, ensure_folder, require_space
from autoice.batch import run_each
from autoice.config import DataConfig
from autoice.errors import AutoiceError, SceneError

#: Bump when the cached arrays' meaning changes (invalidates every existing cache).
CACHE_VERSION = 1


@dataclass
class CachedScene:
    """One cached scene: memory-mapped arrays plus what the loader and predict need to know.

    Pickles as file paths (the memory maps are reopened), so DataLoader workers started with
    ``spawn`` do not copy the arrays.
    """

    key: str  #: scene key (``20180124T194759_dmi``) or the file stem
    path: Path  #: the source netCDF file
    inputs: np.ndarray  #: (C, h, w) memmap
    labels: np.ndarray | None  #: (3, h, w) uint8 memmap, None for test scenes
    valid: int  #: pixels with at least one valid label
    full_shape: tuple[int, int] = (0, 0)  #: (sar_lines, sar_samples) of the 80 m grid
    valid_rows: np.ndarray | None = None  #: valid-label pixels per row (h,), for sampling
    channels: tuple[str, ...] = ()
    downscale: int = 1
    files: tuple[Path, Path | None] | None = field(default=None, repr=False)  #: (inputs.npy, labels.npy)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.files is not None:
            state["inputs"] = state["labels"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.files is not None:
            inputs_file, labels_file = self.files
            self.inputs = np.load(inputs_file, mmap_mode="r")
            self.labels = np.load(labels_file, mmap_mode="r") if labels_file is not None else None


def fingerprint(data_cfg: DataConfig) -> str:
    """Short hash of the settings that shape the cached arrays (not patch size, workers...)."""
    picked = {
        "channels": list(data_cfg.inputs),
        "downscale": int(data_cfg.downscale),
        "dtype": data_cfg.cache_dtype,
        "version": CACHE_VERSION,
    }
    if data_cfg.downscale_mode != "nearest":  # caches written before the switch keep their fingerprint
        picked["downscale_mode"] = data_cfg.downscale_mode
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def scene_cache_key(path: Path) -> str:
    """Cache key of a scene file: its scene key for RTT names, else the file stem."""
    name = schema.parse_rtt_name(path.name)
    return name.key if name is not None else path.stem


def _source_id(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"source": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _meta_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.json"


def _files(folder: Path, key: str) -> tuple[Path, Path]:
    return folder / f"{key}.inputs.npy", folder / f"{key}.labels.npy"


def _fresh_meta(folder: Path, key: str, source: Path, with_labels: bool) -> dict[str, Any] | None:
    """The entry's metadata if it can be reused for ``source``, else None."""
    try:
        meta = json.loads(_meta_path(folder, key).read_text())
    except (OSError, ValueError):
        return None
    if {k: meta.get(k) for k in ("source", "size", "mtime_ns")} != _source_id(source):
        return None
    if meta.get("version") != CACHE_VERSION or (with_labels and not meta.get("labels")):
        return None
    inputs_file, labels_file = _files(folder, key)
    if not inputs_file.is_file() or (meta.get("labels") and not labels_file.is_file()):
        return None
    return meta


def _reserve(path: Path) -> None:
    """Allocate a memory-mapped file's blocks now.

    A full disk then fails here with ENOSPC, instead of killing the process with SIGBUS when a page
    of the (sparse) map is first written.
    """
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
    finally:
        os.close(fd)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def build_one(source: Path, folder: Path, key: str, channels: Sequence[str], downscale: int, dtype: str,
              with_labels: bool, mode: str = "nearest") -> dict[str, Any]:  # fmt: skip
    """Read one scene and write its cache entry; return the entry's metadata (runs in a worker)."""
    from autoice.data.inputs import cast_channel, downscaled_shape, read_channel, scene_labels
    from autoice.scenes import SceneKind, has_charts, open_scene

    _meta_path(folder, key).unlink(missing_ok=True)  # the entry is invalid until rewritten
    ident = _source_id(source)
    inputs_file, labels_file = _files(folder, key)
    with open_scene(source, SceneKind.TRAIN if with_labels else SceneKind.TEST) as ds:
        full = (ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]])
        h, w = downscaled_shape(full, downscale)
        require_space(folder, len(channels) * h * w * np.dtype(dtype).itemsize + len(schema.CHARTS) * h * w,
                      f"the cache entry of {source.name}")  # fmt: skip
        with atomic_output(inputs_file) as tmp:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(len(channels), h, w))
            _reserve(tmp)
            for i, name in enumerate(channels):  # one channel in memory at a time
                mm[i] = cast_channel(read_channel(ds, name, downscale, mode), mm.dtype)  # read errors: SceneError
            mm.flush()
            del mm
        labels = with_labels or has_charts(ds)
        valid_rows: list[int] = []
        if labels:
            lab = scene_labels(ds, downscale)
            valid_rows = (lab != schema.CHART_FILL).any(axis=0).sum(axis=1).tolist()
            _write_npy(labels_file, lab)
        else:
            labels_file.unlink(missing_ok=True)
    meta = {
        **ident,
        "version": CACHE_VERSION,
        "channels": list(channels),
        "downscale": downscale,
        "dtype": dtype,
        "full_shape": list(full),
        "shape": [len(channels), h, w],
        "labels": labels,
        "valid": int(sum(valid_rows)),
        "valid_rows": valid_rows,
    }
    with atomic_output(_meta_path(folder, key)) as tmp:
        tmp.write_text(json.dumps(meta))
    return meta


def _open_entry(folder: Path, key: str, source: Path, meta: dict[str, Any]) -> CachedScene:
    inputs_file, labels_file = _files(folder, key)
    has_labels = bool(meta["labels"])
    scene = CachedScene(
        key=key,
        path=source,
        inputs=np.load(inputs_file, mmap_mode="r"),
        labels=np.load(labels_file, mmap_mode="r") if has_labels else None,
        valid=int(meta["valid"]),
        full_shape=(int(meta["full_shape"][0]), int(meta["full_shape"][1])),
        valid_rows=np.asarray(meta["valid_rows"], dtype=np.int64) if has_labels else None,
        channels=tuple(meta["channels"]),
        downscale=int(meta["downscale"]),
        files=(inputs_file, labels_file if has_labels else None),
    )
    if scene.inputs.shape != tuple(meta["shape"]):
        raise AutoiceError(f"{inputs_file}: cached array has shape {scene.inputs.shape}, expected {meta['shape']}")
    return scene


def build_cache(scenes: Sequence[Path], data_cfg: DataConfig, cache_dir: Path, *, workers: int = 1,
                progress: bool = True, with_labels: bool = True, scheduler: str | None = None
                ) -> list[CachedScene]:  # fmt: skip
    """Make sure every scene has a fresh cache entry for ``data_cfg``; return them memory-mapped.

    Args:
        scenes: RTT files (train scenes; test scenes with ``with_labels=False``).
        data_cfg: channels, downscale and cache dtype decide the entry (see :func:`fingerprint`).
        cache_dir: root of the cache; entries go to ``cache_dir/<fingerprint>/``.
        workers: processes reading scenes in parallel.
        progress: tqdm bar on stderr for the scenes being (re)built.
        with_labels: require and cache the charts.
        scheduler: a Dask scheduler's address: read the scenes on that cluster (``cache_dir`` on
            storage every worker sees).

    Returns:
        One CachedScene per input path, in the same order.

    Raises:
        SceneError: a scene is missing.
        ScenesFailed: scenes are unreadable or do not follow the format; raised after every good
            scene is cached (kept for the next run), naming each bad one. Training on fewer
            scenes than given, without a word, would be worse.
        AutoiceError: two scenes share a cache key.
    """
    paths = [Path(p) for p in scenes]
    folder = Path(cache_dir) / fingerprint(data_cfg)
    keys = [scene_cache_key(p) for p in paths]
    seen: dict[str, Path] = {}
    for key, p in zip(keys, paths, strict=True):
        if not p.is_file():
            raise SceneError(p, "no such file")
        if key in seen and seen[key].resolve() != p.resolve():
            raise AutoiceError(f"{p}: same scene key {key} as {seen[key]}; give each scene once")
        seen[key] = p
    unique = {key: seen[key] for key in dict.fromkeys(keys)}

    metas: dict[str, dict[str, Any]] = {}
    todo = []
    for key, p in unique.items():
        meta = _fresh_meta(folder, key, p, with_labels)
        if meta is None:
            todo.append((p, folder, key, list(data_cfg.inputs), int(data_cfg.downscale), data_cfg.cache_dtype,
                         with_labels, data_cfg.downscale_mode))  # fmt: skip
        else:
            metas[key] = meta
    if todo:
        ensure_folder(folder)
        _write_config(folder, data_cfg)
        batch = run_each(build_one, todo, [str(t[0]) for t in todo], workers=workers, desc="caching scenes",
                         progress=progress, mp_context=get_context("spawn"), scheduler=scheduler,
                         outputs=[folder])  # fmt: skip
        for i, meta in batch.results.items():
            metas[todo[i][2]] = meta
        batch.check(total=len(unique), outcome="the good ones are cached for the next run")
    return [_open_entry(folder, key, p, metas[key]) for key, p in zip(keys, paths, strict=True)]


def _write_config(folder: Path, data_cfg: DataConfig) -> None:
    """A human-readable note of what the fingerprint folder holds."""
    note = folder / "fingerprint.json"
    if note.is_file():
        return
    text = json.dumps({"channels": list(data_cfg.inputs), "downscale": data_cfg.downscale,
                       "downscale_mode": data_cfg.downscale_mode, "dtype": data_cfg.cache_dtype,
                       "version": CACHE_VERSION}, indent=1)  # fmt: skip
    with atomic_output(note) as tmp:
        tmp.write_text(text + os.linesep)
