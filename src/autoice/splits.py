"""Which scenes validate a run: the seeded hold-out, MMSeaIce's official list, or the starter kit's draw.

``DataConfig.val_rule`` picks the rule; :func:`validation_split` applies it and says in one line
which rule was used (and why it fell back), so the training log shows it.

- ``fraction``: a seeded hold-out of ``val_fraction`` of the scenes (ours).
- ``official``: MMSeaIce validates on the 17 scenes of its ``datalists/valset2.json`` and trains on
  the rest. Used when all 17 are in the data (matched by scene key), else ``fraction``.
- ``starter``: the starter kit's quickstart draws 10 scenes with ``np.random.seed(0)`` and
  ``np.random.choice(train_list, 10, replace=False)`` from the official ``dataset.json`` order. We
  order the scenes the same way (official ones in that order, others after them by name) and draw
  with the same legacy generator, so on the full official set the 10 scenes are the starter kit's.
  With 10 scenes or fewer, ``fraction``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoice import schema


def _key(path: Path) -> str:
    name = schema.parse_rtt_name(path.name)
    return name.key if name is not None else path.stem


def fraction_split(files: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Seeded hold-out: the same files and seed always give the same split."""
    if val_fraction <= 0 or len(files) < 2:
        return list(files), []
    n_val = min(len(files) - 1, max(1, round(val_fraction * len(files))))
    order = np.random.default_rng(seed).permutation(len(files))
    val = sorted(files[i] for i in order[:n_val])
    return sorted(files[i] for i in order[n_val:]), val


def official_split(files: list[Path]) -> tuple[list[Path], list[Path]] | None:
    """MMSeaIce's valset2 split, or None when not all of its scenes are in ``files``."""
    wanted = set(schema.official_scenes()["valset2"])
    val = [f for f in files if _key(f) in wanted]
    if {_key(f) for f in val} != wanted:
        return None
    return [f for f in files if _key(f) not in wanted], sorted(val)


def starter_split(files: list[Path]) -> tuple[list[Path], list[Path]] | None:
    """The starter kit's seeded draw of 10 validation scenes, or None with 10 scenes or fewer."""
    if len(files) <= schema.STARTER_VAL_SCENES:
        return None
    rank = {k: i for i, k in enumerate(schema.official_scenes()["dataset"])}
    ordered = sorted(files, key=lambda f: (rank.get(_key(f), len(rank)), f.name))
    # legacy RandomState: choice(n, k, replace=False) is permutation(n)[:k], as the notebook's np.random.choice
    picked = np.random.RandomState(schema.STARTER_VAL_SEED).permutation(len(ordered))[: schema.STARTER_VAL_SCENES]
    chosen = {int(i) for i in picked}
    val = [ordered[i] for i in sorted(chosen)]
    return sorted(f for i, f in enumerate(ordered) if i not in chosen), sorted(val)


def validation_split(files: list[Path], rule: str, *, val_fraction: float, seed: int
                     ) -> tuple[list[Path], list[Path], str]:  # fmt: skip
    """Split ``files`` into (train, validation) by ``rule``; the third item says what was done."""
    n = len(files)
    if rule == "official":
        split = official_split(files)
        if split is not None:
            return (*split, f"validation: MMSeaIce's official 17 scenes (valset2.json), {n - 17} left for training")
        found = len({_key(f) for f in files} & set(schema.official_scenes()["valset2"]))
        why = f"only {found} of MMSeaIce's 17 official validation scenes are in the data"
    elif rule == "starter":
        split = starter_split(files)
        if split is not None:
            return (*split, f"validation: the starter kit's 10 scenes drawn with numpy seed 0 from {n} scenes")
        why = f"{n} scenes, the starter kit's rule needs more than {schema.STARTER_VAL_SCENES}"
    elif rule == "fraction":
        why = ""
    else:
        raise ValueError(f"unknown validation rule {rule!r}")
    train, val = fraction_split(files, val_fraction, seed)
    message = f"validation: seeded hold-out of {len(val)} of {n} scenes (val_fraction {val_fraction:g}, seed {seed})"
    return train, val, message + (f"; {why}" if why else "")
