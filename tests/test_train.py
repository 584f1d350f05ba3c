"""Training: a short real run, MLflow tracking, resume equivalence, 2-process DDP on CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoice import schema
from autoice.checkpoints import load_checkpoint
from autoice.config import load_config
from autoice.errors import AutoiceError
from autoice.splits import fraction_split as split_scenes
from autoice.train import train

TINY = [
    "train.epochs=2", "train.batches_per_epoch=3", "train.batch_size=4", "data.patch_size=32",
    "model.filters=[8, 8, 16]", "data.downscale=2", "train.val_every=1",
]  # fmt: skip


def _cfg(*extra):
    return load_config("demo", overrides=[*TINY, *extra])


def test_split_is_seeded_and_disjoint(tmp_path):
    files = [tmp_path / f"2020010{i}T000000_dmi_prep.nc" for i in range(10)]
    tr, va = split_scenes(files, 0.2, seed=3)
    assert len(va) == 2 and not set(tr) & set(va) and sorted(tr + va) == sorted(files)
    assert split_scenes(files, 0.2, seed=3) == (tr, va)
    assert split_scenes(files, 0.2, seed=4) != (tr, va)


def test_short_run_tracks_everything(synth_data, tmp_path):
    from mlflow.tracking import MlflowClient

    work = tmp_path / "run"
    result = train(_cfg(), synth_data / "train", work, progress=False)
    assert len(result.history) == 2
    assert {"val_SIC", "val_SOD", "val_FLOE", "val_combined", "train_loss"} <= set(result.history[-1])
    assert not any(k.startswith("task_weight_") for k in result.history[-1])  # fixed task weights: not logged
    assert result.best_checkpoint is not None and result.best_checkpoint.exists()
    assert (work / "config.yaml").exists() and (work / "mlflow.db").exists()
    state = load_checkpoint(result.last_checkpoint)
    assert state["epoch"] == 1 and state["config"]["preset"] == "demo"
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "4"
    assert "val_combined" in run.data.metrics and "train_loss" in run.data.metrics
    assert len(client.get_metric_history(result.run_id, "train_loss")) == 2
    assert run.data.tags["dataset_fingerprint"] and "mlflow.source.git.commit" in run.data.tags
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "checkpoints", "figures"} <= artifacts
    assert any((work / "figures" / "validation").glob("*.png"))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_gives_the_same_weights(synth_data, tmp_path, monkeypatch, ema):
    cfg = _cfg("train.epochs=3", "train.val_every=5", f"train.ema_decay={ema}")
    full = train(cfg, synth_data / "train", tmp_path / "full", progress=False)
    ref = load_checkpoint(full.last_checkpoint)["model"]
    if ema:  # "model" is the weight average, what predict loads; the trained weights ride along
        state = load_checkpoint(full.last_checkpoint)
        assert set(state["ema"]) >= {f"module.{k}" for k in ref} and "n_averaged" in state["ema"]
        assert any(not torch.equal(state["train_model"][k], v) for k, v in ref.items() if v.is_floating_point())

    # Interrupt the second run like Ctrl-C at the start of its third epoch (after epoch 2 was saved).
    real_set_epoch = None

    def interrupting(loader_dataset, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_set_epoch(loader_dataset, epoch)

    from autoice.data import loader as loader_mod

    real_set_epoch = loader_mod.PatchDataset.set_epoch
    monkeypatch.setattr(loader_mod.PatchDataset, "set_epoch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, synth_data / "train", tmp_path / "killed", progress=False)
    monkeypatch.setattr(loader_mod.PatchDataset, "set_epoch", real_set_epoch)
    killed = load_checkpoint(tmp_path / "killed/checkpoints/last.pt")
    assert killed["epoch"] == 1
    resumed = train(cfg, synth_data / "train", tmp_path / "killed", resume=True, progress=False)
    got = load_checkpoint(resumed.last_checkpoint)
    assert got["epoch"] == 2 and got["run_id"] == killed["run_id"] == resumed.run_id
    assert len(got["history"]) == 3
    for k, v in ref.items():
        torch.testing.assert_close(got["model"][k], v, rtol=0, atol=0, msg=k)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_on_cpu(synth_data, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "autoice", "train", "--preset", "demo", "--data", str(synth_data / "train"),
           "--workdir", str(tmp_path / "ddp"), "--quiet", *sum((["--set", s] for s in TINY), []),
           "--set", "train.epochs=3", "--set", "train.task_weighting=dwa"]  # fmt: skip  (DWA weights: broadcast)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DDP replicas max |weight difference|: 0" in out.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'ddp/mlflow.db'}")
    exp = client.get_experiment_by_name("autoice")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["world_size"] == "2"


def test_cli_train_errors(tmp_path, capsys):
    from autoice.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "nope", "--data", str(tmp_path), "--workdir", str(tmp_path / "w")])
    assert e.value.code == 1
    assert "unknown preset 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", "--data", str(tmp_path), "--workdir", str(tmp_path / "w")])
    assert e.value.code == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_a_non_finite_loss_stops_training_and_saves_nothing(synth_data, tmp_path):
    """Issue 10 item 9: a diverging run is an error, never a NaN best.pt."""
    cfg = _cfg("train.epochs=2", "train.lr=1e30")
    with pytest.raises(AutoiceError, match="non-finite loss at step"):
        train(cfg, synth_data / "train", tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("setting", ["train.seed=-1", "train.seed=99999999999", "train.device=bogus",
                                     "train.weight_decay=-1", "train.momentum=-1", "model.filters=[100000]",
                                     "train.lr=inf", "train.task_weights={SIC: .nan, SOD: 1, FLOE: 1}",
                                     "train.task_weights={SIC: -1, SOD: 3, FLOE: 3}",
                                     "train.class_weights=balanced", "data.downscale_mode=median",
                                     "train.task_weighting=uncertainty", "train.dwa_temperature=0",
                                     "data.train_downscales=[5, 0]", "train.water_consistency=-1"])  # fmt: skip
def test_settings_out_of_range_are_config_errors(setting):
    """Issue 10 item 8: each of these gave a traceback deep in training; now one line naming the key."""
    from autoice.config import load_config
    from autoice.errors import ConfigError

    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("demo", overrides=[setting])


def test_a_resume_that_cannot_fit_the_weights_changes_nothing(synth_data, tmp_path):
    """Issue 10 item 7: the failed resume rewrote config.yaml first, so every later resume failed too."""
    work = tmp_path / "run"
    train(_cfg("train.epochs=1"), synth_data / "train", work, progress=False)
    before = (work / "config.yaml").read_text()
    with pytest.raises(AutoiceError, match="weights do not fit this config"):
        train(_cfg("train.epochs=2", "model.filters=[4, 4, 8]"), synth_data / "train", work, resume=True,
              progress=False)  # fmt: skip
    assert (work / "config.yaml").read_text() == before
    resumed = train(_cfg("train.epochs=2"), synth_data / "train", work, resume=True, progress=False)
    assert len(resumed.history) == 2


def test_dwa_task_weighting_reweights_from_the_second_epoch_on(synth_data, tmp_path):
    """train.task_weighting=dwa: epochs 1-2 use task_weights, epoch 3 the DWA factors of epochs 1-2's losses."""
    from autoice.models import dwa_weights

    cfg = _cfg("train.epochs=3", "train.val_every=5", "train.task_weighting=dwa", "train.dwa_temperature=0.5")
    h = train(cfg, synth_data / "train", tmp_path / "dwa", progress=False).history
    w = [{c: r[f"task_weight_{c}"] for c in schema.CHARTS} for r in h]
    assert w[0] == w[1] == cfg.train.task_weights
    assert w[2] == pytest.approx(dwa_weights(h[:2], cfg.train.task_weights, temperature=0.5))
    assert w[2] != pytest.approx(cfg.train.task_weights)


def test_mixed_downscaling_trains_on_every_factor_and_validates_at_one(synth_data, tmp_path, monkeypatch):
    """data.train_downscales: the training scenes cached at each factor reach the patch stream; validation
    scenes stay at data.downscale, and the saved model predicts at it."""
    import autoice.data.loader as loader

    seen = {}
    real = loader.make_loader

    def spy(scenes, data_cfg, **kw):
        seen["train"] = [(s.key, s.downscale) for s in scenes]
        return real(scenes, data_cfg, **kw)

    monkeypatch.setattr(loader, "make_loader", spy)
    cfg = _cfg("train.epochs=1", "data.train_downscales=[3, 2, 4]")
    result = train(cfg, synth_data / "train", tmp_path / "mixed", progress=False)
    keys = sorted({k for k, _ in seen["train"]})
    assert sorted(seen["train"]) == sorted((k, d) for k in keys for d in (2, 3, 4))
    fingerprints = [f for f in (tmp_path / "mixed" / "cache").iterdir() if f.is_dir()]
    assert len(fingerprints) == 3  # one cache per factor
    state = load_checkpoint(result.last_checkpoint)
    assert state["config"]["data"]["downscale"] == 2


def test_class_weights_change_what_is_learned(synth_data, tmp_path, capsys):
    """train.class_weights=inverse_sqrt weighs the cross-entropy by the training labels' class shares."""
    plain = train(_cfg(), synth_data / "train", tmp_path / "plain", progress=False)
    weighted = train(_cfg("train.class_weights=inverse_sqrt"), synth_data / "train", tmp_path / "w", progress=False)
    said = capsys.readouterr()
    line = next(s for s in (said.out + said.err).splitlines() if s.startswith("class weights:"))
    sod = [float(v) for v in line.split("SOD ")[1].split(";")[0].split()]
    assert len(sod) == schema.N_CLASSES["SOD"] and max(sod) > 1 > min(sod)  # water (common) below 1
    a = load_checkpoint(plain.last_checkpoint)["model"]
    b = load_checkpoint(weighted.last_checkpoint)["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(torch.isfinite(v).all() for v in b.values() if v.is_floating_point())


def test_water_consistency_joins_the_training_loss(synth_data, tmp_path, monkeypatch):
    """train.water_consistency=L adds L x the consistency term to each step's loss; 0 leaves it out."""
    import autoice.models.losses as losses

    calls = []
    real = losses.water_consistency

    def spy(outputs, targets, *, sic_mode):
        term = real(outputs, targets, sic_mode=sic_mode)
        calls.append(float(term.detach()))
        return term

    monkeypatch.setattr(losses, "water_consistency", spy)
    one = ("train.epochs=1", "train.batches_per_epoch=2")
    train(_cfg(*one), synth_data / "train", tmp_path / "off", progress=False)
    assert calls == []
    r = train(_cfg(*one, "train.water_consistency=0.5"), synth_data / "train", tmp_path / "on", progress=False)
    assert len(calls) == 2 and all(c >= 0 for c in calls) and max(calls) > 0
    assert all(torch.isfinite(v).all() for v in load_checkpoint(r.last_checkpoint)["model"].values()
               if v.is_floating_point())  # fmt: skip


def test_cpu_bf16_comes_from_the_cpu_flags(tmp_path):
    from autoice.devices import cpu_has_native_bf16

    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu avx2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16(info) is torch.backends.mkldnn.is_available()
    info.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(info) is torch.backends.mkldnn.is_available()
    info.write_text("processor : 0\nflags : fpu avx2 avx512f avx512bw\n")  # bf16 would be emulated: slower
    assert cpu_has_native_bf16(info) is False
    assert cpu_has_native_bf16(tmp_path / "missing") is False


@pytest.mark.parametrize(("native", "amp", "expected"), [(True, True, torch.bfloat16), (False, True, None),
                                                         (True, False, None)])  # fmt: skip
def test_mixed_precision_on_cpu_where_native(synth_data, tmp_path, monkeypatch, native, amp, expected):
    """Training autocasts to bf16 on a CPU with native bf16 (about 2x faster), else stays fp32;
    checkpoints hold fp32 weights in the standard layout whatever the training layout (channels-last)."""
    import autoice.devices
    import autoice.train

    monkeypatch.setattr(autoice.devices, "cpu_has_native_bf16", lambda *a: native)
    seen = []
    real_step = autoice.train._train_step

    def spy(run, x, y):
        seen.append((run.use_amp, run.amp_dtype, x.dtype))
        with torch.autocast("cpu", dtype=run.amp_dtype, enabled=run.use_amp):
            probe = run.net(x)["SOD"]
        seen.append(probe.dtype)
        return real_step(run, x, y)

    monkeypatch.setattr(autoice.train, "_train_step", spy)
    result = train(_cfg("train.epochs=1", "train.batches_per_epoch=1", f"train.amp={str(amp).lower()}"),
                   synth_data / "train", tmp_path / "run", progress=False)  # fmt: skip
    use_amp, dtype, x_dtype = seen[0]
    assert use_amp is (expected is not None) and x_dtype == torch.float32
    assert seen[1] == (expected or torch.float32)  # what the network computes in
    assert dtype == (expected or torch.float32)
    weights = load_checkpoint(result.last_checkpoint)["model"]
    conv = [v for v in weights.values() if v.ndim == 4]
    assert conv and all(v.is_contiguous() and v.dtype == torch.float32 for v in conv)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
