"""Typed training configuration: dataclass defaults, YAML presets, ``--set key=value`` overrides.

A preset is a small YAML file of overrides (``src/autoice/resources/presets/<name>.yaml``) over the
dataclass defaults below. Overrides are parsed as YAML scalars/lists, type-checked against the
default, and an unknown key is an error that lists the valid ones. The resolved config is a plain
dict (:meth:`Config.to_dict`) saved with every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from autoice import schema
from autoice.errors import ConfigError

#: Input channels derived from a scene rather than stored in it.
DERIVED_INPUTS: tuple[str, ...] = ("latitude", "longitude", "month")
#: SAR texture inputs: the standard deviation of the 80 m values of one SAR channel in each
#: downscaled pixel's block (what nearest downscaling throws away); name -> stored variable.
TEXTURE_INPUTS: dict[str, str] = {
    "sar_primary_std": schema.SAR_VARIABLES[0],
    "sar_secondary_std": schema.SAR_VARIABLES[1],
}
VALID_INPUTS: tuple[str, ...] = (*schema.INPUT_VARIABLES, *DERIVED_INPUTS, *TEXTURE_INPUTS)
#: How full-grid inputs are downscaled (``data.downscale_mode``): pixel ``i d``, or the mean of the block.
DOWNSCALE_MODES: tuple[str, ...] = ("nearest", "mean")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
#: Validation split rules (see ``DataConfig.val_rule``).
CLASS_WEIGHTS: tuple[str, ...] = ("none", "inverse_sqrt")  #: train.class_weights choices
TASK_WEIGHTINGS: tuple[str, ...] = ("fixed", "dwa")  #: train.task_weighting choices
VAL_RULES: tuple[str, ...] = ("fraction", "official", "starter")


@dataclass
class DataConfig:
    """What the model sees: channels, resolution, patches."""

    inputs: list[str] = field(default_factory=lambda: list(schema.INPUT_VARIABLES))  #: channel names, in order
    downscale: int = 1  #: 1 = 80 m; 10 = 800 m (inputs and labels by nearest neighbour)
    #: how full-grid inputs are downscaled: ``nearest`` (pixel ``i d``, MMSeaIce) or ``mean`` (mean of the
    #: ``d x d`` block over pixels with data: speckle averaged down); labels are always nearest
    downscale_mode: str = "nearest"
    #: downscaling factors training patches are drawn from: every training scene is cached at each and
    #: patches come from each factor equally often (the same ice at several pixel sizes, and more context
    #: per patch at the coarser ones); validation and prediction stay at ``downscale``. [] = ``downscale`` only
    train_downscales: list[int] = field(default_factory=list)
    patch_size: int = 256  #: square patch side, in pixels at the downscaled resolution
    val_fraction: float = 0.1  #: share of scenes held out (seeded) when no --val-data is given
    #: which scenes validate when no --val-data is given: ``fraction`` (seeded ``val_fraction`` hold-out),
    #: ``official`` (MMSeaIce's 17 scenes of valset2.json when all are in the data, else ``fraction``),
    #: ``starter`` (the starter kit's 10 scenes drawn with numpy seed 0 from the official list order)
    val_rule: str = "fraction"
    #: where validation is scored: ``full`` (predictions upsampled to the 80 m charts) or ``model``
    #: (at the model's resolution, against labels downscaled by nearest neighbour, as MMSeaIce does)
    val_resolution: str = "full"
    #: patch placement: ``valid_centred`` (scene weighted by valid area, window around a valid pixel,
    #: clipped) or ``uniform`` (scene uniform, top-left corner uniform, redraw while the window holds
    #: <= 1 valid SIC pixel: the starter kit and MMSeaIce)
    sampling: str = "valid_centred"
    #: share of patches centred on a pixel of a class drawn uniformly among the SOD and FLOE classes the
    #: training scenes hold (the chart drawn first, each with probability 1/2): rare stages and floe sizes
    #: are seen as often as common ones; the rest are placed by ``sampling``. 0 = off
    class_balanced: float = 0.0
    #: 2 km inputs in training patches: ``exact`` (in register with the 80 m grid) or ``starter`` (the
    #: patch's whole 2 km cells stretched to the patch by nearest neighbour, up to a cell out of register)
    coarse_registration: str = "exact"
    cache_dtype: str = "float16"  #: dtype of the cached inputs: float16 or float32
    num_workers: int = 0  #: DataLoader worker processes


@dataclass
class AugmentConfig:
    """Augmentations applied to training patches on tensors."""

    flip: bool = False  #: random horizontal/vertical flips
    rot90: bool = False  #: random +-90 degree rotations
    #: arbitrary rotation: integer angle uniform in [-rotation, rotation - 1] degrees; 0 = off
    rotation: int = 0
    rotation_prob: float = 0.5  #: probability that a sample gets the arbitrary rotation
    scale: list[float] = field(default_factory=list)  #: [min, max] random rescale factor; [] = off
    #: probability of a random factor in ``scale``; otherwise the factor is ``scale[1]`` (MMSeaIce)
    scale_prob: float = 1.0
    resample: str = "bilinear"  #: interpolation of inputs when resampling: bilinear or nearest (labels: nearest)
    cutmix: float = 0.0  #: probability of CutMix between two patches of a batch
    #: ``sample`` (each sample its own draw and box, partner another sample) or ``batch`` (one draw and one
    #: box for the whole batch, partners by a random permutation, self-pairs possible: MMSeaIce)
    cutmix_mode: str = "sample"


@dataclass
class ModelConfig:
    """Multi-task U-Net: shared trunk, one head per chart."""

    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 64])  #: channels per encoder level
    sic_mode: str = "classification"  #: classification (11 classes, CE) or regression (1 channel, MSE)
    #: inference: pixels of context read around every tile, mirrored beyond the scene's edge, and cropped
    #: from the output; 0 = the source kits' plain pass with the network's zero padding at the edges
    edge_margin: int = 0
    #: inference: SIC = 0 where the SOD and FLOE heads both give open water at least this probability
    #: (the heads agree on water); 0 = off, as in the source kits
    water_rule: float = 0.0


@dataclass
class TrainConfig:
    """Optimisation and the loop."""

    epochs: int = 50
    batches_per_epoch: int = 500
    batch_size: int = 8
    optimizer: str = "adam"  #: adam or sgd
    lr: float = 1e-4
    momentum: float = 0.9  #: sgd only
    weight_decay: float = 0.0
    scheduler: str = "none"  #: none or cosine_warm_restarts
    restart_epochs: int = 20  #: cosine warm restarts period (epochs)
    task_weights: dict[str, float] = field(default_factory=lambda: {"SIC": 1.0, "SOD": 1.0, "FLOE": 1.0})
    #: ``fixed`` (``task_weights`` throughout) or ``dwa``: dynamic weight averaging (Liu et al. 2019), each
    #: epoch ``task_weights`` times 3 softmax(r / ``dwa_temperature``) of the charts' loss ratios r = (last
    #: epoch's mean loss) / (the epoch before's): a chart whose loss falls slowly gets more weight
    task_weighting: str = "fixed"
    dwa_temperature: float = 2.0
    grad_clip: float = 0.0  #: max gradient norm; 0 = off
    #: exponential moving average of the weights (and BatchNorm statistics) per step, e.g. 0.999: the
    #: averaged model is the one validated, saved as ``model`` and used by predict; 0 = off
    ema_decay: float = 0.0
    #: cross-entropy class weights for the class heads: ``none``, or ``inverse_sqrt`` (w_c ~ 1 / sqrt(share of
    #: class c in the training labels), scaled so the mean weight over training pixels is 1, capped at 10)
    class_weights: str = "none"
    #: weight of a consistency loss that pulls the SIC head to 0 where the SOD and FLOE heads both say open
    #: water (weight: the product of their water probabilities, not differentiated): the water rule as a
    #: loss instead of an inference rule; 0 = off, as in the source kits
    water_consistency: float = 0.0
    #: mixed precision where the hardware has it: CUDA (bf16 if supported, else fp16 + GradScaler) and CPUs
    #: with native bf16 (AVX512-BF16/AMX, about 2x faster); elsewhere fp32
    amp: bool = True
    seed: int = 0
    val_every: int = 1  #: validate every N epochs (and after the last)
    time_budget_min: float = 0.0  #: stop after the epoch that passes this many minutes of training; 0 = off
    device: str = "auto"  #: auto, cpu, cuda, cuda:N
    #: validation runs each scene through the network in one pass (the source kits); else 1024 px tiles
    whole_scene: bool = False


@dataclass
class Config:
    """The whole resolved configuration of a training run."""

    preset: str = "baseline"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML-ready)."""
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """``section.key -> value`` (for MLflow params)."""
        out = {}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                for k, v in values.items():
                    out[f"{section}.{k}"] = v
            else:
                out[section] = values
        return out

    def fingerprint(self, *sections: str) -> str:
        """Short stable hash of the given sections (all when none), e.g. to key a cache."""
        d = self.to_dict()
        picked = {s: d[s] for s in sections} if sections else d
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading
def preset_names() -> list[str]:
    """Presets that ship with the package."""
    folder = resources.files("autoice.resources").joinpath("presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _valid_keys() -> list[str]:
    keys = ["preset"]
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(f.default_factory):  # type: ignore[arg-type]
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(f.default_factory)]  # type: ignore[arg-type]
    return keys


def _coerce(key: str, value: Any, hint: Any, default: Any) -> Any:
    origin = get_origin(hint)
    if hint in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            value = float(value) if hint is float or not value.strip().lstrip("-").isdigit() else int(value)
        except ValueError:
            pass
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item,) = get_args(hint)
        if isinstance(value, list):
            return [_coerce(key, v, item, None) for v in value]
    elif origin is dict:
        _, item = get_args(hint)
        if isinstance(value, dict):
            merged = dict(default or {})
            for k, v in value.items():
                merged[str(k)] = _coerce(f"{key}.{k}", v, item, None)
            return merged
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', str(hint))}, got {value!r}")


def _apply(cfg: Config, key: str, value: Any, source: str) -> None:
    if key == "preset":
        cfg.preset = str(value)
        return
    section, _, name = key.partition(".")
    target = getattr(cfg, section, None) if section in {f.name for f in dataclasses.fields(Config)} else None
    names = {f.name for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else set()
    if name not in names:
        raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(_valid_keys())}")
    hint = get_type_hints(type(target))[name]
    setattr(target, name, _coerce(key, value, hint, getattr(target, name)))


def _apply_mapping(cfg: Config, mapping: dict[str, Any], source: str) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict) and key in {"data", "augment", "model", "train"}:
            for k, v in value.items():
                _apply(cfg, f"{key}.{k}", v, source)
        else:
            _apply(cfg, key, value, source)


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` -> (key, value parsed as a YAML scalar or list; ``1e-3`` is a number)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=0.001")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML") from exc
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def load_config(preset: str | None = None, config_file: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Config:  # fmt: skip
    """Defaults <- preset (or config file) <- ``--set`` overrides, validated."""
    cfg = Config()
    if preset is not None and config_file is not None:
        raise ConfigError("give --preset or --config, not both")
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a YAML text file (not UTF-8 at byte {exc.start})") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read this config file: {exc.strerror}") from exc
        data = _read_yaml(text, str(path))
        base = data.pop("preset", None)
        if base is not None:
            _apply_mapping(cfg, _preset_mapping(str(base)), f"preset {base}")
            cfg.preset = str(base)
        _apply_mapping(cfg, data, str(path))
    else:
        name = preset or "baseline"
        _apply_mapping(cfg, _preset_mapping(name), f"preset {name}")
        cfg.preset = name
    for item in overrides:
        key, value = parse_override(item)
        _apply(cfg, key, value, f"--set {item}")
    validate_config(cfg)
    return cfg


def _preset_mapping(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    text = resources.files("autoice.resources").joinpath("presets", f"{name}.yaml").read_text()
    return _read_yaml(text, f"preset {name}")


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a Config from :meth:`Config.to_dict` output (e.g. from a checkpoint)."""
    cfg = Config()
    _apply_mapping(cfg, d, "saved config")
    validate_config(cfg)
    return cfg


def validate_config(cfg: Config) -> None:
    """Check values that types alone do not constrain; raise ConfigError naming the key."""
    bad = [c for c in cfg.data.inputs if c not in VALID_INPUTS]
    if bad:
        raise ConfigError(f"data.inputs: unknown channel(s) {', '.join(bad)}; valid: {', '.join(VALID_INPUTS)}")
    if not cfg.data.inputs or len(set(cfg.data.inputs)) != len(cfg.data.inputs):
        raise ConfigError("data.inputs: must be a non-empty list without repeats")
    texture = [c for c in cfg.data.inputs if c in TEXTURE_INPUTS]
    factors = [cfg.data.downscale, *cfg.data.train_downscales]
    if texture and min(factors) < 2:
        raise ConfigError(f"data.inputs: {', '.join(texture)} need data.downscale (and data.train_downscales) >= 2: "
                          "a texture channel is the spread of the 80 m pixels inside each downscaled pixel")
    checks = [
        (cfg.data.downscale >= 1, "data.downscale", "must be >= 1"),
        (all(f >= 1 for f in cfg.data.train_downscales), "data.train_downscales", "must be factors >= 1"),
        (cfg.data.downscale_mode in DOWNSCALE_MODES, "data.downscale_mode",
         f"must be one of {', '.join(DOWNSCALE_MODES)}"),
        (cfg.data.patch_size >= 16, "data.patch_size", "must be >= 16"),
        (0.0 <= cfg.data.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)"),
        (cfg.data.cache_dtype in ("float16", "float32"), "data.cache_dtype", "must be float16 or float32"),
        (cfg.data.num_workers >= 0, "data.num_workers", "must be >= 0"),
        (cfg.model.sic_mode in ("classification", "regression"), "model.sic_mode",
         "must be classification or regression"),
        (len(cfg.model.filters) >= 1 and all(f > 0 for f in cfg.model.filters), "model.filters",
         "must be a non-empty list of positive ints"),
        (cfg.data.patch_size % (2 ** len(cfg.model.filters)) == 0, "data.patch_size",
         f"must be divisible by 2^len(model.filters) = {2 ** len(cfg.model.filters)} (the U-Net's depth)"),
        (cfg.train.optimizer in ("adam", "sgd"), "train.optimizer", "must be adam or sgd"),
        (cfg.train.scheduler in ("none", "cosine_warm_restarts"), "train.scheduler",
         "must be none or cosine_warm_restarts"),
        (cfg.train.epochs >= 1 and cfg.train.batches_per_epoch >= 1 and cfg.train.batch_size >= 1,
         "train.epochs/batches_per_epoch/batch_size", "must be >= 1"),
        (math.isfinite(cfg.train.lr) and cfg.train.lr > 0, "train.lr", "must be a finite number > 0"),
        (set(cfg.train.task_weights) == set(schema.CHARTS), "train.task_weights",
         f"must give a weight for each of {', '.join(schema.CHARTS)}"),
        (all(math.isfinite(w) and w >= 0 for w in cfg.train.task_weights.values())
         and sum(cfg.train.task_weights.values()) > 0, "train.task_weights",
         "must be finite and >= 0, and not all 0"),
        (math.isfinite(cfg.train.weight_decay) and cfg.train.weight_decay >= 0, "train.weight_decay",
         "must be a finite number >= 0"),
        (0.0 <= cfg.train.momentum < 1.0, "train.momentum", "must be in [0, 1)"),
        (math.isfinite(cfg.train.grad_clip) and cfg.train.grad_clip >= 0, "train.grad_clip", "must be >= 0 (0 = off)"),
        (0 <= cfg.train.seed < 2**32, "train.seed", "must be in [0, 2^32)"),
        (_DEVICE.fullmatch(cfg.train.device) is not None, "train.device", "must be auto, cpu, cuda or cuda:N"),
        (all(f <= 4096 for f in cfg.model.filters), "model.filters", "must be at most 4096 channels per level"),
        (cfg.train.val_every >= 1, "train.val_every", "must be >= 1"),
        (cfg.train.time_budget_min >= 0, "train.time_budget_min", "must be >= 0 (0 = no budget)"),
        (not cfg.augment.scale or (len(cfg.augment.scale) == 2 and 0 < cfg.augment.scale[0] <= cfg.augment.scale[1]),
         "augment.scale", "must be [] or [min, max] with 0 < min <= max"),
        (0.0 <= cfg.augment.cutmix <= 1.0, "augment.cutmix", "must be a probability in [0, 1]"),
        (0.0 <= cfg.train.ema_decay < 1.0, "train.ema_decay", "must be in [0, 1) (0 = off)"),
        (cfg.train.water_consistency >= 0.0, "train.water_consistency", "must be >= 0 (0 = off)"),
        (cfg.train.task_weighting in TASK_WEIGHTINGS, "train.task_weighting",
         f"must be one of {', '.join(TASK_WEIGHTINGS)}"),
        (cfg.train.dwa_temperature > 0, "train.dwa_temperature", "must be > 0"),
        (cfg.train.class_weights in CLASS_WEIGHTS, "train.class_weights", f"must be one of {', '.join(CLASS_WEIGHTS)}"),
        (cfg.model.edge_margin >= 0, "model.edge_margin", "must be >= 0 pixels"),
        (0.0 <= cfg.model.water_rule <= 1.0, "model.water_rule", "must be a probability in [0, 1] (0 = off)"),
        (cfg.data.val_rule in VAL_RULES, "data.val_rule", f"must be one of {', '.join(VAL_RULES)}"),
        (cfg.data.val_resolution in ("full", "model"), "data.val_resolution", "must be full or model"),
        (cfg.data.sampling in ("valid_centred", "uniform"), "data.sampling", "must be valid_centred or uniform"),
        (0.0 <= cfg.data.class_balanced <= 1.0, "data.class_balanced", "must be in [0, 1]"),
        (cfg.data.coarse_registration in ("exact", "starter"), "data.coarse_registration",
         "must be exact or starter"),
        (0 <= cfg.augment.rotation <= 180, "augment.rotation", "must be in [0, 180] degrees (0 = off)"),
        (0.0 <= cfg.augment.rotation_prob <= 1.0, "augment.rotation_prob", "must be a probability in [0, 1]"),
        (0.0 <= cfg.augment.scale_prob <= 1.0, "augment.scale_prob", "must be a probability in [0, 1]"),
        (cfg.augment.resample in ("bilinear", "nearest"), "augment.resample", "must be bilinear or nearest"),
        (cfg.augment.cutmix_mode in ("sample", "batch"), "augment.cutmix_mode", "must be sample or batch"),
    ]  # fmt: skip
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"{key}: {why}")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from autoice.atomic import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
