"""Session fixtures: one small synthetic dataset made through the real synth -> prepare path."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """8 training and 2 test scenes of 96 x 128 (80 m): OUT/train, OUT/test (+ references)."""
    from autoice import synth

    out = tmp_path_factory.mktemp("synth")
    synth.synthesize(out, n_train=8, n_test=2, height=96, width=128, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_run(synth_data, tmp_path_factory):
    """A tiny demo-preset model trained for a few steps on ``synth_data`` (its workdir)."""
    from autoice.config import load_config
    from autoice.train import train

    work = tmp_path_factory.mktemp("run")
    cfg = load_config("demo", overrides=["train.epochs=1", "train.batches_per_epoch=2", "train.batch_size=4",
                                         "data.patch_size=32", "model.filters=[8, 8, 16]", "data.downscale=2"])
    train(cfg, synth_data / "train", work, progress=False)
    return work
