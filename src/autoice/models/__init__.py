"""Networks and losses for sea-ice charting (PyTorch; import this package only where torch is wanted)."""

from autoice.models.losses import (
    chart_losses,
    class_probabilities,
    dwa_weights,
    to_classes,
    water_consistency,
    weighted_loss,
)
from autoice.models.unet import SIC_MODES, MultiTaskUNet, build_model, n_parameters

__all__ = [
    "SIC_MODES",
    "MultiTaskUNet",
    "build_model",
    "chart_losses",
    "class_probabilities",
    "dwa_weights",
    "n_parameters",
    "to_classes",
    "water_consistency",
    "weighted_loss",
]
