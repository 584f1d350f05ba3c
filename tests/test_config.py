"""Config: presets, config files, --set overrides and their errors."""

from __future__ import annotations

import pytest
import yaml

from autoice import schema
from autoice.config import AugmentConfig, config_from_dict, load_config, parse_override, preset_names, save_config
from autoice.errors import ConfigError


def test_presets_ship_and_match_the_recipes():
    assert preset_names() == ["autoice", "baseline", "demo", "mmseaice"]
    base = load_config("baseline")
    assert base.data.inputs == list(schema.INPUT_VARIABLES)
    assert (base.model.filters, base.train.optimizer, base.train.lr) == ([16, 32, 64, 64], "adam", 1e-4)
    assert (base.data.patch_size, base.train.batch_size, base.train.batches_per_epoch, base.train.epochs) == (
        256, 8, 500, 50)
    mm = load_config("mmseaice")
    assert len(mm.data.inputs) == 16 and mm.data.inputs[-3:] == ["latitude", "longitude", "month"]
    assert (mm.data.downscale, mm.model.sic_mode, mm.train.optimizer, mm.train.scheduler) == (
        10, "regression", "sgd", "cosine_warm_restarts")
    assert mm.train.task_weights == {"SIC": 1.0, "SOD": 3.0, "FLOE": 3.0}
    assert (mm.train.epochs, mm.train.batches_per_epoch, mm.train.batch_size) == (300, 500, 16)
    assert mm.augment.flip and not mm.augment.rot90 and mm.augment.scale == [0.9, 1.1] and mm.augment.cutmix > 0
    assert (mm.augment.rotation, mm.augment.rotation_prob, mm.augment.scale_prob, mm.augment.resample,
            mm.augment.cutmix, mm.augment.cutmix_mode) == (90, 0.5, 0.5, "nearest", 0.5, "batch")
    assert (mm.data.sampling, mm.data.coarse_registration, mm.data.val_rule, mm.data.val_resolution,
            mm.train.whole_scene) == ("uniform", "starter", "official", "model", True)
    assert (base.data.sampling, base.data.coarse_registration, base.data.val_rule, base.data.val_resolution,
            base.train.whole_scene) == ("uniform", "starter", "starter", "full", True)
    assert base.augment == AugmentConfig()  # the starter kit does not augment
    demo = load_config("demo")
    assert demo.data.inputs == mm.data.inputs and demo.model.sic_mode == "regression"


def test_autoice_is_mmseaice_plus_the_pieces_that_won():
    """autoice = the published mmseaice recipe + the pieces that won on bench/skill.py (none so far) + the
    edge fix of issue 9 (mirrored context at the scene's edges instead of the network's zero padding)."""
    mm, ours = load_config("mmseaice").flat(), load_config("autoice").flat()
    assert {k for k in ours if ours[k] != mm[k]} == {"preset", "model.edge_margin"}
    assert mm["model.edge_margin"] == 0 and ours["model.edge_margin"] == 16  # the source's plain pass
    assert ours["data.sampling"] == "uniform"  # valid-centred patches lost over three seeds (2026-12-04)
    assert ours["train.amp"] is True and ours["train.ema_decay"] == 0.0


def test_overrides_are_typed():
    cfg = load_config("demo", overrides=["train.lr=0.5", "train.epochs=3", "augment.flip=false",
                                         "model.filters=[8, 8]", "train.task_weights={SOD: 5}"])
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 3 and cfg.augment.flip is False
    assert cfg.model.filters == [8, 8]
    assert cfg.train.task_weights == {"SIC": 1.0, "SOD": 5.0, "FLOE": 3.0}
    assert parse_override("train.lr=1e-3") == ("train.lr", 1e-3)


@pytest.mark.parametrize(("override", "message"), [
    ("train.lrr=1", "unknown key 'train.lrr'; valid keys: preset, data.inputs"),
    ("nope=1", "unknown key 'nope'"),
    ("train.epochs=1.5", "train.epochs: expected int, got 1.5"),
    ("train.amp=yes please", "train.amp: expected bool"),
    ("train.lr", "expected key=value"),
    ("data.inputs=[HH]", "data.inputs: unknown channel(s) HH"),
    ("train.optimizer=rmsprop", "train.optimizer: must be adam or sgd"),
    ("data.patch_size=100", "data.patch_size: must be divisible by"),
    ("augment.scale=[1.2, 0.8]", "augment.scale"),
    ("data.val_rule=random", "data.val_rule: must be one of fraction, official, starter"),
    ("data.sampling=centred", "data.sampling: must be valid_centred or uniform"),
    ("data.class_balanced=1.5", "data.class_balanced: must be in"),
    ("data.coarse_registration=loose", "data.coarse_registration: must be exact or starter"),
    ("data.val_resolution=800m", "data.val_resolution: must be full or model"),
    ("augment.rotation=200", "augment.rotation: must be in [0, 180]"),
    ("augment.rotation_prob=2", "augment.rotation_prob: must be a probability"),
    ("augment.scale_prob=-1", "augment.scale_prob: must be a probability"),
    ("augment.resample=bicubic", "augment.resample: must be bilinear or nearest"),
    ("augment.cutmix_mode=pair", "augment.cutmix_mode: must be sample or batch"),
    ("train.whole_scene=maybe", "train.whole_scene: expected bool"),
])
def test_override_errors(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("baseline", overrides=[override])
    assert message in str(err.value)


def test_unknown_preset_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'fast'; available: autoice, baseline, demo, mmseaice"):
        load_config("fast")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(config_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(config_file=bad)
    with pytest.raises(ConfigError, match="not both"):
        load_config("demo", config_file=bad)


def test_config_file_on_top_of_a_preset_and_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"preset": "mmseaice", "train": {"epochs": 7}}))
    cfg = load_config(config_file=path)
    assert cfg.preset == "mmseaice" and cfg.train.epochs == 7 and cfg.data.downscale == 10
    saved = tmp_path / "resolved.yaml"
    save_config(cfg, saved)
    again = config_from_dict(yaml.safe_load(saved.read_text()))
    assert again == cfg
    assert again.fingerprint("data") == cfg.fingerprint("data")
    assert load_config("demo").fingerprint("data") != cfg.fingerprint("data")
    assert cfg.flat()["train.epochs"] == 7


def test_demo_is_autoice_cpu_sized():
    """demo differs from autoice only in the size keys (the recipe pieces are the same)."""
    size = {"preset", "data.downscale", "data.patch_size", "train.epochs", "train.batches_per_epoch",
            "train.restart_epochs", "train.val_every"}  # fmt: skip
    demo, ours = load_config("demo").flat(), load_config("autoice").flat()
    assert {k for k in demo if demo[k] != ours[k]} == size
