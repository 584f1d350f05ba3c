"""Multi-task U-Net: one shared encoder-decoder trunk, one 1x1-conv head per chart.

The layout follows the AI4Arctic challenge organisers' starter U-Net (also the trunk of the
2023 winner, spec section 8): an input block, one contracting block per further entry of
``filters`` (2x2 max-pool then two 3x3 conv-BN-ReLU), a bridge (one more contracting block at
``filters[-1]``), then expanding blocks (bilinear x2 upsampling, concatenation with the skip,
two conv-BN-ReLU) back to full resolution. With ``filters = [32, 32, 64, 64]`` this gives the
winner's ~0.5 M parameters.

The trunk pools ``len(filters)`` times, so inputs are zero-padded (bottom/right) to a multiple of
``2 ** len(filters)`` and the outputs cropped back: any H, W works, which full-scene inference
needs. Zero is the dataset's input fill value, so padding looks like the no-data the network
already sees in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from autoice import schema
from autoice.errors import ConfigError

if TYPE_CHECKING:
    from autoice.config import Config

SIC_MODES: tuple[str, ...] = ("classification", "regression")


class DoubleConv(nn.Module):
    """Two (3x3 conv, BatchNorm, ReLU); padding 1 keeps the size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the two convolutions."""
        return self.block(x)


class Down(nn.Module):
    """2x2 max-pool, then DoubleConv: one encoder level down."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Halve H and W, then convolve."""
        return self.conv(self.pool(x))


class Up(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip, DoubleConv: one decoder level up."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x`` to the skip's size and fuse them."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class MultiTaskUNet(nn.Module):
    """U-Net trunk shared by the three charts, with a 1x1-conv head per chart.

    Args:
        in_channels: number of input channels (``len(cfg.data.inputs)``).
        filters: channels per encoder level, e.g. ``[16, 32, 64, 64]``; the bridge uses ``filters[-1]``.
        sic_mode: ``"classification"`` (SIC head has 11 logits) or ``"regression"`` (1 channel, the
            class index 0..10 as a float).

    Raises:
        ConfigError: for an unknown ``sic_mode`` or empty / non-positive ``filters``.
    """

    def __init__(self, in_channels: int, filters: Sequence[int], *, sic_mode: str = "classification") -> None:
        super().__init__()
        filters = [int(f) for f in filters]
        if sic_mode not in SIC_MODES:
            raise ConfigError(f"model.sic_mode: must be one of {', '.join(SIC_MODES)}, got {sic_mode!r}")
        if not filters or min(filters) < 1 or in_channels < 1:
            raise ConfigError(f"model.filters: need a non-empty list of positive ints, got {filters!r}")
        self.in_channels = in_channels
        self.filters = tuple(filters)
        self.sic_mode = sic_mode
        #: H and W are padded to a multiple of this (one halving per Down, bridge included).
        self.multiple = 2 ** len(filters)

        self.inc = DoubleConv(in_channels, filters[0])
        self.downs = nn.ModuleList(Down(a, b) for a, b in zip(filters[:-1], filters[1:], strict=True))
        self.bridge = Down(filters[-1], filters[-1])
        # Decoder: from the bridge up through every encoder level, deepest first.
        ups, channels = [], filters[-1]
        for skip in reversed(filters):
            ups.append(Up(channels, skip, skip))
            channels = skip
        self.ups = nn.ModuleList(ups)
        out = {c: schema.N_CLASSES[c] for c in schema.CHARTS}
        if sic_mode == "regression":
            out["SIC"] = 1
        self.heads = nn.ModuleDict({c: nn.Conv2d(filters[0], n, kernel_size=1) for c, n in out.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Charts for a batch of input patches or whole scenes.

        Args:
            x: (B, C, H, W) float inputs, any H and W.

        Returns:
            ``{chart: (B, K, H, W)}`` in ``schema.CHARTS`` order: logits (K = number of classes) for
            class heads, or the raw value (K = 1) for regression SIC.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = self.bridge(skips[-1])
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            y = up(y, skip)
        if pad_h or pad_w:
            y = y[..., :h, :w]
        return {chart: head(y) for chart, head in self.heads.items()}


def build_model(cfg: Config) -> MultiTaskUNet:
    """The network a config describes (one input channel per ``cfg.data.inputs`` entry)."""
    return MultiTaskUNet(len(cfg.data.inputs), cfg.model.filters, sic_mode=cfg.model.sic_mode)


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
