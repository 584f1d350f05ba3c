"""Training patches sampled from the memory-mapped cache, fed by DataLoader workers.

Two ways to place a patch (``DataConfig.sampling``):

- ``valid_centred`` (ours): three steps, each without rejection: a scene with probability
  proportional to its valid-label area, a valid label pixel of that scene uniformly (the k-th valid
  pixel, found through the per-row valid counts stored with the cache and one row of labels), then
  the patch window placed at a random offset around that pixel and clipped to the scene. Every
  patch holds at least one valid label and no time is spent on retries, however sparse the labels.
- ``uniform`` (the starter kit and MMSeaIce): a scene uniformly, a top-left corner uniformly in
  ``[0, side - patch)`` per axis (numpy's exclusive upper bound: the last corner is never drawn),
  both redrawn while the window holds at most one valid SIC pixel. Windows touch the scene edges
  far less often than with ``valid_centred``.

With ``DataConfig.class_balanced = q`` a share ``q`` of the patches is placed around a pixel of a rare
class instead: a chart (SOD or FLOE, each with probability 1/2), a class uniformly among those the
training scenes hold, a pixel of that class uniformly (from an index of at most
``CLASS_INDEX_PER_SCENE`` pixels per scene and class, built once), then the window at a random offset
around it, as for ``valid_centred``. A class that covers 1 % of the pixels is then drawn about as often
as open water.

With mixed downscaling (``DataConfig.train_downscales``) the stream holds every training scene once per
factor; each factor gets the same share of the patches (``uniform``: every scene copy equally likely;
``valid_centred``: by valid area within a factor).

Scenes smaller than the patch are padded (inputs 0, labels 255). With
``DataConfig.coarse_registration = "starter"`` the 2 km channels of a patch are rebuilt the starter
kit's way: the whole 2 km cells from the one holding the patch's first pixel on, ``ceil(patch / cell)``
of them, stretched to the patch by nearest neighbour, which puts them up to one cell out of register.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from autoice import schema
from autoice.config import DataConfig
from autoice.data.cache import CachedScene
from autoice.errors import AutoiceError


def _window(n: int, centre: int, size: int, offset: int) -> tuple[int, int, int, int]:
    """Window of ``size`` holding ``centre`` at ``offset``, clipped to ``[0, n)`` (or covering it when n < size).

    Returns (source start, source stop, destination start, destination stop).
    """
    start = min(max(centre - offset, min(0, n - size)), max(0, n - size))
    s0, s1 = max(start, 0), min(start + size, n)
    return s0, s1, s0 - start, s1 - start


#: Pixels kept per scene and class in the class-balanced index (a seeded subsample beyond that).
CLASS_INDEX_PER_SCENE = 4096
#: Charts the class-balanced placement draws from (SIC is a concentration, not a class to balance).
BALANCED_CHARTS: tuple[str, ...] = ("SOD", "FLOE")

#: Redraws of a ``uniform`` window before giving up (a scene set with almost no valid SIC pixel).
MAX_UNIFORM_TRIES = 100_000


def starter_cells(corner: int, patch: int, downscale: int) -> np.ndarray:
    """2 km cell shown at each patch row (or column) by the starter kit's crop, along one axis.

    The crop takes the cells from ``floor(corner / cell)`` on, ``ceil(patch / cell)`` of them, with
    ``cell = 25 / downscale`` model pixels, and stretches them to ``patch`` pixels by nearest
    neighbour (pixel ``i`` <- cell ``floor(i * n / patch)``). In register, pixel ``i`` would show
    cell ``floor((corner + i) / cell)``.
    """
    first = corner * downscale // schema.CELL_RTT
    n = -(-patch * downscale // schema.CELL_RTT)
    return first + (np.arange(patch) * n) // patch


def _tensor(view: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor over a (read-only) memory-map view; only ever read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "non-writable array": we never write through it
        return torch.from_numpy(view)


class PatchDataset(IterableDataset):
    """Endless (or ``length``-long) stream of ``(inputs (C, p, p) float32, labels (3, p, p) int64)``.

    Each (rank, worker) draws from its own RNG seeded by (seed, rank, worker id, epoch): ranks and
    workers see different patches and a run is reproducible for a given seed. Call
    :meth:`set_epoch` before each epoch for fresh patches.

    Args:
        scenes: cached train scenes (those without labels or valid pixels are ignored).
        patch_size: patch side at the cached resolution.
        seed: base seed.
        rank: this process's rank in distributed training.
        world_size: number of ranks.
        length: patches per epoch for this rank (None = endless).
        batch_size: with ``length``, workers split the epoch in whole batches of this size so a
            DataLoader yields exactly ``ceil(length / batch_size)`` batches.
        sampling: ``valid_centred`` or ``uniform`` (see the module docstring).
        coarse_registration: ``exact`` or ``starter`` (see the module docstring).
        class_balanced: share of patches placed around a pixel of a uniformly drawn SOD or FLOE class.
    """

    def __init__(self, scenes: Sequence[CachedScene], patch_size: int, *, seed: int, rank: int = 0,
                 world_size: int = 1, length: int | None = None, batch_size: int = 1,
                 sampling: str = "valid_centred", coarse_registration: str = "exact",
                 class_balanced: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.scenes = [s for s in scenes if s.labels is not None and s.valid > 0]
        if not self.scenes:
            raise AutoiceError("training data: no scene has a valid label (all charts masked?)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.patch_size = int(patch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.length = length
        self.batch_size = max(1, int(batch_size))
        self.epoch = 0
        if sampling not in ("valid_centred", "uniform"):
            raise ValueError(f"sampling must be valid_centred or uniform, got {sampling!r}")
        if coarse_registration not in ("exact", "starter"):
            raise ValueError(f"coarse_registration must be exact or starter, got {coarse_registration!r}")
        self.sampling, self.coarse_registration = sampling, coarse_registration
        # by valid area within each downscaling factor, every factor the same share (mixed downscaling)
        valid = np.array([s.valid for s in self.scenes], dtype=np.float64)
        factor = np.array([s.downscale for s in self.scenes])
        for f in np.unique(factor):
            valid[factor == f] /= valid[factor == f].sum()
        self.weights = valid / valid.sum()
        self._cum_rows = [np.cumsum(self._valid_rows(s)) for s in self.scenes]
        if not 0.0 <= class_balanced <= 1.0:
            raise ValueError(f"class_balanced must be in [0, 1], got {class_balanced}")
        self.class_balanced = float(class_balanced)
        self._class_index: list[list[np.ndarray]] = self._build_class_index() if class_balanced > 0 else []

    def _build_class_index(self) -> list[list[np.ndarray]]:
        """Per chart, per class present: an (n, 3) array of (scene, row, col) pixels, a seeded subsample per scene."""
        rng = np.random.default_rng([self.seed & ((1 << 63) - 1), 7919])
        chunks: dict[tuple[int, int], list[np.ndarray]] = {}
        for s, scene in enumerate(self.scenes):
            labels = scene.labels
            assert labels is not None  # filtered in __init__
            for chart in BALANCED_CHARTS:
                j = schema.CHARTS.index(chart)
                lab = np.asarray(labels[j])
                for k in np.unique(lab):
                    if k == schema.CHART_FILL:
                        continue
                    flat = np.flatnonzero(lab == k)
                    if flat.size > CLASS_INDEX_PER_SCENE:
                        flat = rng.choice(flat, CLASS_INDEX_PER_SCENE, replace=False)
                    rows, cols = np.divmod(flat, lab.shape[1])
                    chunks.setdefault((j, int(k)), []).append(np.stack([np.full_like(rows, s), rows, cols], 1))
        by_chart: dict[int, list[np.ndarray]] = {}
        for (j, _), parts in sorted(chunks.items()):
            by_chart.setdefault(j, []).append(np.concatenate(parts))
        return list(by_chart.values())

    @staticmethod
    def _valid_rows(scene: CachedScene) -> np.ndarray:
        if scene.valid_rows is not None:
            return np.asarray(scene.valid_rows, dtype=np.int64)
        return (np.asarray(scene.labels) != schema.CHART_FILL).any(axis=0).sum(axis=1)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's RNG stream (call before iterating; workers pick it up when they start)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("an endless PatchDataset has no length")
        return self.length

    def _stream(self) -> tuple[np.random.Generator, int, int]:
        """This (rank, worker)'s RNG, worker id and worker count."""
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mask = (1 << 63) - 1
        return np.random.default_rng([self.seed & mask, self.rank, worker, self.epoch]), worker, n_workers

    def _batch_sizes(self, worker: int, n_workers: int) -> Iterator[int]:
        """Sizes of the batches this worker makes: whole batches dealt round-robin, the last maybe short."""
        if self.length is None:
            while True:
                yield self.batch_size
        n_batches = -(-self.length // self.batch_size)
        for b in range(worker, n_batches, n_workers):
            yield self.batch_size if b < n_batches - 1 else self.length - (n_batches - 1) * self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng, worker, n_workers = self._stream()
        for n in self._batch_sizes(worker, n_workers):
            for _ in range(n):
                yield self.sample(rng)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The same stream grouped in batches, each patch written straight into the batch tensors.

        Saves the collate copy (a whole batch) and, in a DataLoader worker, allocates the batch in
        shared memory so that handing it to the main process copies nothing.
        """
        rng, worker, n_workers = self._stream()
        shared = get_worker_info() is not None
        c = self.scenes[0].inputs.shape[0]
        p = self.patch_size
        for n in self._batch_sizes(worker, n_workers):
            x = _empty((n, c, p, p), torch.float32, shared)
            y = _empty((n, len(schema.CHARTS), p, p), torch.int64, shared)
            for i in range(n):
                self.sample_into(rng, x[i], y[i])
            yield x, y

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One patch around a uniformly drawn valid label pixel of a valid-area-weighted scene."""
        p = self.patch_size
        x = torch.empty((self.scenes[0].inputs.shape[0], p, p), dtype=torch.float32)
        y = torch.empty((len(schema.CHARTS), p, p), dtype=torch.int64)
        self.sample_into(rng, x, y)
        return x, y

    def sample_into(self, rng: np.random.Generator, x: torch.Tensor, y: torch.Tensor) -> None:
        """Draw one patch into ``x`` (C, p, p) float32 and ``y`` (3, p, p) int64."""
        if self._class_index and rng.random() < self.class_balanced:
            s, top, left = self._class_window(rng)
        elif self.sampling == "uniform":
            s, top, left = self._uniform_window(rng)
        else:
            s, top, left = self._centred_window(rng)
        scene = self.scenes[s]
        labels = scene.labels
        if labels is None:  # filtered in __init__
            raise AssertionError(f"{scene.path}: scene without labels in the training stream")
        p = self.patch_size
        _, h, w = labels.shape
        r0, r1, c0, c1 = max(top, 0), min(top + p, h), max(left, 0), min(left + p, w)
        dr0, dr1, dc0, dc1 = r0 - top, r1 - top, c0 - left, c1 - left
        if (r1 - r0, c1 - c0) != (p, p):  # scene smaller than the patch
            x.fill_(schema.INPUT_FILL)
            y.fill_(schema.CHART_FILL)
        # torch converts float16 -> float32 with F16C, ~10x faster than numpy's astype
        x[:, dr0:dr1, dc0:dc1].copy_(_tensor(scene.inputs[:, r0:r1, c0:c1]))
        y[:, dr0:dr1, dc0:dc1].copy_(_tensor(labels[:, r0:r1, c0:c1]))
        if self.coarse_registration == "starter":
            self._starter_coarse(scene, max(top, 0), max(left, 0), x)

    def _uniform_window(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(scene, top, left): uniform scene and corner, redrawn while <= 1 SIC pixel is valid."""
        p = self.patch_size
        for _ in range(MAX_UNIFORM_TRIES):
            s = int(rng.integers(len(self.scenes)))
            labels = self.scenes[s].labels
            if labels is None:
                raise AssertionError("scene without labels in the training stream")
            _, h, w = labels.shape
            top = int(rng.integers(h - p)) if h > p else 0
            left = int(rng.integers(w - p)) if w > p else 0
            if np.count_nonzero(np.asarray(labels[0, top : top + p, left : left + p]) != schema.CHART_FILL) > 1:
                return s, top, left
        raise AutoiceError(f"training data: no patch with more than one valid SIC pixel in {MAX_UNIFORM_TRIES} draws")

    def _centred_window(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(scene, top, left): valid-area-weighted scene, window around a uniform valid pixel."""
        s = int(rng.choice(len(self.scenes), p=self.weights))
        scene, cum = self.scenes[s], self._cum_rows[s]
        labels = scene.labels
        if labels is None:  # filtered in __init__
            raise AssertionError(f"{scene.path}: scene without labels in the training stream")
        k = int(rng.integers(cum[-1]))  # the k-th valid pixel of the scene
        row = int(np.searchsorted(cum, k, side="right"))
        before = int(cum[row - 1]) if row else 0
        cols = np.flatnonzero((labels[:, row, :] != schema.CHART_FILL).any(axis=0))
        col = int(cols[k - before])
        return self._window_around(rng, s, row, col)

    def _window_around(self, rng: np.random.Generator, s: int, row: int, col: int) -> tuple[int, int, int]:
        """(scene, top, left) of a window holding pixel (row, col) of scene ``s`` at a random offset, clipped."""
        labels = self.scenes[s].labels
        assert labels is not None  # filtered in __init__
        p = self.patch_size
        _, h, w = labels.shape
        r0, _, dr0, _ = _window(h, row, p, int(rng.integers(p)))
        c0, _, dc0, _ = _window(w, col, p, int(rng.integers(p)))
        return s, r0 - dr0, c0 - dc0

    def _class_window(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(scene, top, left): a chart, a class of it and a pixel of that class, the window around it."""
        classes = self._class_index[int(rng.integers(len(self._class_index)))]
        pixels = classes[int(rng.integers(len(classes)))]
        s, row, col = (int(v) for v in pixels[int(rng.integers(len(pixels)))])
        return self._window_around(rng, s, row, col)

    def _starter_coarse(self, scene: CachedScene, top: int, left: int, x: torch.Tensor) -> None:
        """Overwrite the 2 km channels of ``x`` with the starter kit's stretched crop (see :func:`starter_cells`).

        The cache holds the 2 km channels in register, so cell ``k`` is read at its first model pixel
        ``ceil(25 k / d)``; cells past the scene's pixels are 0, as the source pads them.
        """
        idx = [i for i, c in enumerate(scene.channels) if c in schema.COARSE_VARIABLES]
        if not idx:
            return
        p, d = self.patch_size, scene.downscale
        _, h, w = scene.inputs.shape
        rows = -(-schema.CELL_RTT * starter_cells(top, p, d) // d)
        cols = -(-schema.CELL_RTT * starter_cells(left, p, d) // d)
        block = np.asarray(scene.inputs[np.ix_(idx, np.minimum(rows, h - 1), np.minimum(cols, w - 1))], np.float32)
        block[:, rows >= h, :] = schema.INPUT_FILL
        block[:, :, cols >= w] = schema.INPUT_FILL
        x[idx] = torch.from_numpy(block)


def _empty(shape: tuple[int, ...], dtype: torch.dtype, shared: bool) -> torch.Tensor:
    """Uninitialised tensor, in shared memory when made in a DataLoader worker (as default_collate does)."""
    if not shared:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel)
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


class BatchStream(IterableDataset):
    """Batches of a :class:`PatchDataset` (for a DataLoader with ``batch_size=None``)."""

    def __init__(self, patches: PatchDataset) -> None:
        super().__init__()
        self.patches = patches

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's RNG stream (see :meth:`PatchDataset.set_epoch`)."""
        self.patches.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.patches) // self.patches.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.patches.batches()


def make_loader(scenes: Sequence[CachedScene], data_cfg: DataConfig, *, batch_size: int, seed: int, rank: int = 0,
                world_size: int = 1, batches: int | None = None) -> DataLoader:  # fmt: skip
    """DataLoader of training batches ``(B, C, p, p) float32, (B, 3, p, p) int64``.

    ``batches`` per epoch (None = endless); ``data_cfg.num_workers`` worker processes. Call
    ``loader.dataset.set_epoch(epoch)`` before each epoch. Augmentation is not applied here: the
    training loop calls :func:`autoice.data.transforms.augment_batch` on the device.
    """
    patches = PatchDataset(
        scenes, data_cfg.patch_size, seed=seed, rank=rank, world_size=world_size,
        length=None if batches is None else batches * batch_size, batch_size=batch_size,
        sampling=data_cfg.sampling, coarse_registration=data_cfg.coarse_registration,
        class_balanced=data_cfg.class_balanced,
    )  # fmt: skip
    workers = data_cfg.num_workers
    return DataLoader(
        BatchStream(patches),
        batch_size=None,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if workers else None,
    )
