"""Checkpoint files: round trip, atomic writes, clean errors, and no import of the training loop."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from autoice import checkpoints
from autoice.checkpoints import (
    CHECKPOINT_VERSION,
    load_checkpoint,
    make_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from autoice.config import load_config
from autoice.errors import AutoiceError

KEYS = ["version", "model", "optimizer", "scheduler", "scaler", "epoch", "step", "best_score", "history", "config",
        "inputs", "rng", "run_id", "dataset_fingerprint"]  # fmt: skip


def _checkpoint():
    cfg = load_config("demo")
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return make_checkpoint(cfg, model=model, optimizer=opt, scheduler=None, scaler=torch.amp.GradScaler("cuda",
                           enabled=False), epoch=4, step=50, best_score=12.5, history=[{"epoch": 1, "train_loss": 2.0}],
                           rng=[rng_state()], run_id="abc", dataset_fingerprint="f00d")  # fmt: skip


def test_round_trip(tmp_path):
    ckpt = _checkpoint()
    assert list(ckpt) == KEYS and ckpt["version"] == CHECKPOINT_VERSION
    path = tmp_path / "sub" / "last.pt"
    save_checkpoint(path, ckpt)
    got = load_checkpoint(path)
    assert list(got) == KEYS and list(tmp_path.joinpath("sub").iterdir()) == [path]
    for k, v in ckpt["model"].items():
        torch.testing.assert_close(got["model"][k], v, rtol=0, atol=0)
    assert got["config"] == load_config("demo").to_dict() and got["inputs"] == list(load_config("demo").data.inputs)
    assert (got["epoch"], got["step"], got["best_score"], got["run_id"]) == (4, 50, 12.5, "abc")
    assert got["scheduler"] is None and got["history"] == [{"epoch": 1, "train_loss": 2.0}]


def test_rng_state_restores_every_generator(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "config": {}, "rng": [rng_state()]})
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _checkpoint())
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary file
    monkeypatch.undo()
    save_checkpoint(path, {"model": {}, "config": {"old": True}})
    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, _checkpoint())
    assert list(tmp_path.iterdir()) == [path] and load_checkpoint(path)["config"] == {"old": True}


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such checkpoint"),
    (b"not a torch file", "not a readable autoice checkpoint (UnpicklingError)"),
    ({"weights": 1}, "not an autoice checkpoint (no model/config)"),
    ([1, 2], "not an autoice checkpoint (no model/config)"),
])  # fmt: skip
def test_not_a_checkpoint_is_one_clean_line(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(AutoiceError) as e:
        load_checkpoint(path)
    assert str(e.value) == f"{path}: {message}"


def test_serving_and_predict_do_not_import_the_training_loop(tmp_path):
    code = textwrap.dedent("""
        import sys, types
        import autoice.serving as serving
        assert "autoice.train" not in sys.modules, "import autoice.serving imported autoice.train"
        from autoice.checkpoints import save_checkpoint
        from autoice.config import load_config
        from autoice.models.unet import build_model
        from autoice.predict import load_models
        cfg = load_config("demo", overrides=["model.filters=[8, 8, 16]"])
        path = sys.argv[1]
        save_checkpoint(path, {"model": build_model(cfg).state_dict(), "config": cfg.to_dict(),
                               "inputs": list(cfg.data.inputs)})
        serving.AutoiceModel().load_context(types.SimpleNamespace(artifacts={"checkpoint": path}))
        load_models([path])
        assert "autoice.train" not in sys.modules, "loading a model imported autoice.train"
    """)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.pt")], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
