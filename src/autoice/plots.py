"""Pictures people look at: scenes, charts in ice-chart colours with legends, predictions against references.

Colours follow the WMO ice chart colour code standard (WMO/TD-No. 1215): blue water; total
concentration from green (1-3/10) through yellow (4-6/10) and orange (7-8/10) to red
(9-10/10), with lighter and darker shades telling the single classes apart; stage of
development from lavender new ice and purple young ice through green first-year ice to
brown old ice. Masked pixels (255) and SAR no-data are drawn in one neutral grey that every
legend names "no data"; so are predictions on land (distance map zone 0) and where the SAR has no
data, which the reference masks and the score ignores.

Scenes of 5000 x 5200 pixels are reduced before plotting (SAR by block means, charts by the
block-centre pixel, AMSR2 by nearest upsampling) so that a figure takes seconds. Matplotlib is
imported inside the functions (Agg backend) so that importing this module stays cheap.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoice import schema
from autoice.atomic import atomic_output
from autoice.errors import SceneError, SubmissionError

PathLike = str | os.PathLike[str]

NO_DATA_COLOUR = (0.80, 0.80, 0.80)
NO_DATA_LABEL = "no data"
MAX_DISPLAY_SIZE = 1000  #: longest side (pixels) of a scene after reduction for display
DEFAULT_AMSR2 = "btemp_36_5h"
STRETCH = (2.0, 98.0)  #: percentile stretch of the SAR composite and the AMSR2 panel

#: RGB (0-255) per class of each chart.
CHART_COLOURS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "SIC": (
        (0, 100, 255),  # 0: ice free / open water (< 1/10)
        (190, 255, 200), (140, 255, 160), (60, 205, 95),  # 1-3/10: very open drift (green)
        (255, 255, 150), (255, 255, 0), (225, 200, 0),  # 4-6/10: open drift (yellow)
        (255, 170, 70), (255, 125, 7),  # 7-8/10: close drift (orange)
        (255, 0, 0), (150, 0, 0),  # 9/10, 10/10: very close drift / compact (red)
    ),
    "SOD": ((0, 100, 255), (240, 210, 250), (170, 40, 240), (155, 210, 0), (0, 140, 0), (180, 100, 50)),
    "FLOE": ((0, 100, 255), (255, 235, 180), (250, 200, 110), (235, 150, 60), (200, 95, 30), (130, 50, 10),
             (40, 40, 40)),
}  # fmt: skip

#: Error map of a categorical chart: code -> (label, colour).
ERROR_CLASSES: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("correct", (0.45, 0.75, 0.45)),
    ("wrong", (0.85, 0.12, 0.12)),
    ("no reference (not scored)", NO_DATA_COLOUR),
)


# ----------------------------------------------------------------------------- colours and legends
def chart_rgb(classes: np.ndarray, chart: str) -> np.ndarray:
    """uint8 class image -> float RGB image (H, W, 3) in [0, 1]; 255 -> no-data grey."""
    lut = np.tile(np.asarray(NO_DATA_COLOUR, dtype=np.float32), (256, 1))
    lut[: schema.N_CLASSES[chart]] = np.asarray(CHART_COLOURS[chart], dtype=np.float32) / 255.0
    return lut[np.asarray(classes, dtype=np.uint8)]


def legend_handles(chart: str) -> list:
    """Matplotlib patches naming every class of ``chart`` plus no data."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=np.asarray(c) / 255.0, edgecolor="0.4", label=name)
               for c, name in zip(CHART_COLOURS[chart], schema.CLASS_NAMES[chart], strict=True)]  # fmt: skip
    handles.append(Patch(facecolor=NO_DATA_COLOUR, edgecolor="0.4", label=NO_DATA_LABEL))
    return handles


def legend_labels(fig: Any) -> list[str]:
    """Every legend entry of a figure (axes and figure legends), in drawing order: for checks and tests."""
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


# ----------------------------------------------------------------------------- saving
def save_figure(fig: Any, path: PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    target = Path(path)
    try:
        with atomic_output(target) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return target


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (for embedding in HTML); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- reduction for display
def display_step(shape: tuple[int, int], max_size: int = MAX_DISPLAY_SIZE) -> int:
    """Block size that brings the longest side of ``shape`` to at most ``max_size`` pixels."""
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    return max(1, -(-max(shape) // max_size))


def _centres(n: int, step: int) -> np.ndarray:
    """Index of the centre pixel of each block of ``step`` along an axis of ``n`` (last block may be short)."""
    start = np.arange(0, n, step)
    return np.minimum(start + step // 2, n - 1)


def block_mean(values: np.ndarray, step: int) -> np.ndarray:
    """NaN-aware mean over ``step`` x ``step`` blocks (edge blocks may be partial); all-NaN blocks stay NaN."""
    a = np.asarray(values, dtype=np.float32)
    if step == 1:
        return a.copy()
    h, w = a.shape
    hp, wp = -(-h // step) * step, -(-w // step) * step
    padded = np.full((hp, wp), np.nan, dtype=np.float32)
    padded[:h, :w] = a
    blocks = padded.reshape(hp // step, step, wp // step, step)
    valid = np.isfinite(blocks)
    total = np.where(valid, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    count = valid.sum(axis=(1, 3))
    out = np.full(total.shape, np.nan, dtype=np.float32)
    np.divide(total, count, out=out, where=count > 0, casting="unsafe")
    return out


def block_sample(classes: np.ndarray, step: int) -> np.ndarray:
    """Class image reduced to the centre pixel of each ``step`` x ``step`` block (same grid as block_mean)."""
    a = np.asarray(classes)
    if step == 1:
        return a.copy()
    return a[np.ix_(_centres(a.shape[0], step), _centres(a.shape[1], step))]


def unscale(values: np.ndarray, name: str) -> np.ndarray:
    """Standard-scaled input -> physical units (float32); the no-data value 0 becomes NaN for full-grid inputs."""
    mean, std = schema.global_meanstd()[name]
    a = np.asarray(values, dtype=np.float32)
    out = (a * np.float32(std) + np.float32(mean)).astype(np.float32)
    if name in schema.FULL_GRID_INPUTS:
        out[a == schema.INPUT_FILL] = np.nan
    return out


def upsample_coarse(coarse: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
    """2 km grid -> the reduced display grid of a ``shape`` scene (nearest: cell k covers pixels [25k, 25k+25))."""
    c = np.asarray(coarse)
    rows = np.minimum(_centres(shape[0], step) // schema.CELL_RTT, c.shape[0] - 1)
    cols = np.minimum(_centres(shape[1], step) // schema.CELL_RTT, c.shape[1] - 1)
    return c[np.ix_(rows, cols)]


def stretch(values: np.ndarray, percentiles: tuple[float, float] = STRETCH) -> tuple[float, float]:
    """Display limits: the given percentiles of the finite values ((0, 1) if there are none)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def sar_composite(hh_db: np.ndarray, hv_db: np.ndarray) -> np.ndarray:
    """HH/HV false colour (R = HH, G = HV, B = HH - HV, in dB, each percentile-stretched); no data grey."""
    channels = [hh_db, hv_db, hh_db - hv_db]
    rgb = np.empty((*hh_db.shape, 3), dtype=np.float32)
    for i, ch in enumerate(channels):
        lo, hi = stretch(ch)
        rgb[..., i] = np.clip((ch - lo) / (hi - lo), 0.0, 1.0)
    nodata = ~(np.isfinite(hh_db) & np.isfinite(hv_db))
    rgb[nodata] = NO_DATA_COLOUR
    return rgb


def error_codes(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Error map of a categorical chart: 0 correct, 1 wrong, 2 no reference (see ERROR_CLASSES)."""
    codes = (np.asarray(reference) != np.asarray(prediction)).astype(np.uint8)
    codes[np.asarray(reference) == schema.CHART_FILL] = 2
    return codes


def class_difference(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Signed class difference prediction - reference (float; NaN where the reference is masked)."""
    ref = np.asarray(reference)
    diff = np.asarray(prediction, dtype=np.float32) - ref.astype(np.float32)
    diff[ref == schema.CHART_FILL] = np.nan
    return diff


# ----------------------------------------------------------------------------- scenes for display
@dataclass
class SceneView:
    """A scene reduced for display: what :func:`scene_figure` draws."""

    key: str  #: scene key, e.g. ``20180124T194759_dmi``
    shape: tuple[int, int]  #: full 80 m grid (lines, samples)
    step: int  #: display block size (1 = every pixel)
    sources: list[Path] = field(default_factory=list)  #: files read
    hh: np.ndarray | None = None  #: HH sigma0 (dB), NaN = no data
    hv: np.ndarray | None = None  #: HV sigma0 (dB), NaN = no data
    amsr2: np.ndarray | None = None  #: one AMSR2 channel (K) on the display grid
    amsr2_name: str = DEFAULT_AMSR2
    charts: dict[str, np.ndarray] | None = None  #: reference charts on the display grid
    land: np.ndarray | None = None  #: True where the distance map says land (zone 0), display grid
    attrs: dict[str, Any] = field(default_factory=dict)  #: global attributes of the scene

    @property
    def display_shape(self) -> tuple[int, int]:
        """(lines, samples) after reduction."""
        return (-(-self.shape[0] // self.step), -(-self.shape[1] // self.step))


def _partner(path: Path) -> Path | None:
    """The other file of a released test pair (``_prep.nc`` <-> ``_prep_reference.nc``), if present."""
    key = schema.scene_key(path.name)
    name = key + (schema.RTT_SUFFIX if path.name.endswith(schema.REFERENCE_SUFFIX) else schema.REFERENCE_SUFFIX)
    other = path.with_name(name)
    return other if other.is_file() else None


def _shape(ds: Any) -> tuple[int, int]:
    return int(ds.sizes[schema.FULL_DIMS[0]]), int(ds.sizes[schema.FULL_DIMS[1]])


def _reduced_input(ds: Any, name: str, step: int, strip_pixels: int = 8_000_000) -> np.ndarray:
    """A full-grid input unscaled and block-averaged, read in strips of whole blocks (bounded memory)."""
    from autoice.scenes import read_variable

    lines, samples = ds[name].shape
    rows = max(1, strip_pixels // (samples * step)) * step
    strips = [block_mean(unscale(read_variable(ds, name, slice(r, r + rows)), name), step)
              for r in range(0, lines, rows)]  # fmt: skip
    return np.concatenate(strips, axis=0)


def load_scene_view(
    path: PathLike, *, max_size: int = MAX_DISPLAY_SIZE, amsr2_channel: str = DEFAULT_AMSR2
) -> SceneView:
    """Read what a scene picture needs, reduced for display.

    ``path`` may be an RTT train file (inputs + charts), a test ``_prep.nc`` (inputs; charts
    from a ``_prep_reference.nc`` beside it if present) or a reference file (charts; inputs from
    a ``_prep.nc`` beside it if present). Raises SceneError naming the file on any fault.
    """
    from autoice.scenes import has_charts, open_scene, read_variable

    p = Path(path)
    if amsr2_channel not in schema.AMSR2_VARIABLES:
        raise SceneError(p, f"unknown AMSR2 channel {amsr2_channel!r} (one of {', '.join(schema.AMSR2_VARIABLES)})")
    if schema.RAW_NAME.match(p.name):
        raise SceneError(p, "raw 40 m scene: run `autoice prepare` first and show the ready-to-train file")
    partner = _partner(p) if schema.RTT_NAME.match(p.name) else None
    view: SceneView | None = None
    for f in [p] if partner is None else [p, partner]:
        with open_scene(f) as ds:
            shape = _shape(ds)
            if view is None:
                view = SceneView(key=schema.scene_key(f.name), shape=shape, step=display_step(shape, max_size),
                                 amsr2_name=amsr2_channel, attrs=dict(ds.attrs))  # fmt: skip
            elif shape != view.shape:
                raise SceneError(f, f"grid {shape} differs from {view.shape} of {p.name}")
            view.sources.append(f)
            is_inputs = schema.SAR_VARIABLES[0] in ds.variables
            if is_inputs and view.hh is None:
                view.hh, view.hv = (_reduced_input(ds, v, view.step) for v in schema.SAR_VARIABLES)
                if schema.DISTANCE_VARIABLE in ds.variables:  # zone 0 is land; a block is land when most of it is
                    view.land = _reduced_input(ds, schema.DISTANCE_VARIABLE, view.step) < schema.LAND_ZONE_BELOW
                view.amsr2 = upsample_coarse(unscale(read_variable(ds, amsr2_channel), amsr2_channel), shape,
                                             view.step)  # fmt: skip
                view.attrs = {**dict(ds.attrs), **view.attrs}
            if has_charts(ds) and view.charts is None:
                view.charts = {c: block_sample(read_variable(ds, c), view.step) for c in schema.CHARTS}
    return view  # type: ignore[return-value]  # the loop runs at least once


def not_sea(view: SceneView) -> np.ndarray | None:
    """Display pixels a chart prediction means nothing on: land (distance map) or no SAR data; None if unknown.

    The model predicts every pixel of the array, land and swath edges too; the reference masks them and
    the score ignores them, so pictures grey them out rather than show ice on land.
    """
    if view.hh is None:
        return None
    out = ~np.isfinite(view.hh)
    return out if view.land is None else out | view.land


def read_prediction_view(
    prediction: PathLike, view: SceneView, *, missing_ok: bool = False
) -> dict[str, np.ndarray | None]:
    """One scene's charts from an upload package, reduced like ``view``; None for a chart it lacks.

    Raises SubmissionError naming the file if the scene is absent or a chart has the wrong shape,
    dtype or classes; with ``missing_ok`` such charts come back as None instead (for reports,
    which list the problems separately).
    """
    from autoice.submission import read_submission

    p = Path(prediction)
    found = read_submission(p, keys=[view.key]).get(view.key, {})
    if not found and not missing_ok:
        raise SubmissionError(p, f"no prediction for scene {view.key} (expected variables {view.key}_SIC/SOD/FLOE)")
    out: dict[str, np.ndarray | None] = {}
    for chart in schema.CHARTS:
        a = found.get(chart)
        out[chart] = None
        if a is None:
            continue
        name = schema.submission_variable(view.key, chart)
        n = schema.N_CLASSES[chart]
        small = block_sample(a, view.step) if a.ndim == 2 else a
        if a.shape != view.shape:
            problem = f"{name}: shape {a.shape}, expected {view.shape} (the scene's 80 m grid)"
        elif a.dtype.kind not in "iu":
            problem = f"{name}: dtype {a.dtype} is not integer classes"
        elif small.size and (int(small.min()) < 0 or int(small.max()) >= n):
            problem = f"{name}: values outside the {chart} classes 0..{n - 1}"
        else:
            out[chart] = small.astype(np.uint8)
            continue
        if not missing_ok:
            raise SubmissionError(p, problem)
    return out


# ----------------------------------------------------------------------------- figure panels
def _blank(ax: Any, text: str, shape: tuple[int, int] | None = None) -> None:
    """An empty panel saying why; framed at the scene's shape so that it lines up with its neighbours."""
    if shape is not None:
        ax.imshow(np.ones((*shape, 3), dtype=np.float32), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.75")
    else:
        ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.35",
            wrap=True)  # fmt: skip


def _below(ax: Any, handles: list, ncol: int = 3, title: str | None = None) -> None:
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=ncol, fontsize=8,
              frameon=False, title=title, title_fontsize=8, handlelength=1.4, columnspacing=1.0)  # fmt: skip


def _nodata_patch() -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=NO_DATA_COLOUR, edgecolor="0.4", label=NO_DATA_LABEL)


def _colorbar_axes(ax: Any) -> Any:
    """Axes for a horizontal colour bar just below ``ax``, leaving ``ax`` the size of its neighbours."""
    return ax.inset_axes((0.1, -0.09, 0.8, 0.035))


def _draw_composite(ax: Any, view: SceneView) -> None:
    ax.imshow(sar_composite(view.hh, view.hv), interpolation="antialiased")
    ax.set_title("SAR false colour: R = HH, G = HV, B = HH/HV (dB)", fontsize=10)
    ax.set_axis_off()
    _below(ax, [_nodata_patch()], ncol=1)


def _draw_amsr2(fig: Any, ax: Any, view: SceneView) -> None:
    lo, hi = stretch(view.amsr2)
    im = ax.imshow(view.amsr2, cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
    freq, pol = view.amsr2_name.removeprefix("btemp_")[:-1].replace("_", "."), view.amsr2_name[-1].upper()
    ax.set_title(f"AMSR2 {freq} GHz {pol} brightness temperature", fontsize=10)
    ax.set_axis_off()
    cb = fig.colorbar(im, cax=_colorbar_axes(ax), orientation="horizontal")
    cb.set_label("K", fontsize=8)
    cb.ax.tick_params(labelsize=7)


def _short(text: str, width: int = 52) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _scene_info(view: SceneView, prediction: PathLike | None) -> str:
    lines = [f"scene {view.key}", f"grid {view.shape[0]} x {view.shape[1]} pixels (80 m)"]
    if view.step > 1:
        lines.append(f"shown 1:{view.step} (block means / centres)")
    for a in ("ice_service", "original_id"):
        if a in view.attrs:
            lines.append(_short(f"{a}: {view.attrs[a]}"))
    if view.hh is not None:
        lines.append(f"SAR data: {100 * np.isfinite(view.hh).mean():.1f} % of pixels")
    if view.charts is not None:
        for c in schema.CHARTS:
            lines.append(f"{c} labelled: {100 * (view.charts[c] != schema.CHART_FILL).mean():.1f} % of pixels")
    else:
        lines.append("no reference charts")
    lines.append("files:")
    lines.extend(_short("  " + f.name) for f in view.sources)
    if prediction is not None:
        lines += ["prediction:", _short("  " + Path(prediction).name)]
    return "\n".join(lines)


def _draw_info(ax: Any, view: SceneView, prediction: PathLike | None) -> None:
    ax.set_axis_off()
    ax.text(0.0, 1.0, _scene_info(view, prediction), ha="left", va="top", transform=ax.transAxes, fontsize=9,
            family="monospace", wrap=True)  # fmt: skip


def _draw_chart(
    ax: Any, classes: np.ndarray | None, chart: str, title: str, *, legend: bool, missing: str,
    shape: tuple[int, int] | None = None,
) -> None:  # fmt: skip
    if classes is None:
        _blank(ax, missing, shape)
    else:
        ax.imshow(chart_rgb(classes, chart), interpolation="nearest")
        ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    if legend:
        _below(ax, legend_handles(chart), ncol=4 if chart == "SIC" else 3)


def _draw_error(
    fig: Any, ax: Any, ref: np.ndarray | None, pred: np.ndarray | None, chart: str, shape: tuple[int, int]
) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    if ref is None or pred is None:
        _blank(ax, "no error map: " + ("no reference" if ref is None else "chart missing in the prediction"), shape)
        ax.set_title(f"{chart} error", fontsize=10)
        return
    valid = ref != schema.CHART_FILL
    n_valid = int(valid.sum())
    if chart == "SIC":
        import matplotlib

        diff = class_difference(ref, pred)
        k = schema.N_CLASSES[chart] - 1
        cmap = matplotlib.colormaps["RdBu_r"].resampled(2 * k + 1).with_extremes(bad=NO_DATA_COLOUR)
        norm = BoundaryNorm(np.arange(-k - 0.5, k + 1.5), cmap.N)
        im = ax.imshow(np.ma.masked_invalid(diff), cmap=cmap, norm=norm, interpolation="nearest")
        mae = float(np.abs(diff[valid]).mean()) if n_valid else float("nan")
        ax.set_title(f"SIC error (mean |difference| {mae:.2f} classes)", fontsize=10)
        cb = fig.colorbar(im, cax=_colorbar_axes(ax), orientation="horizontal", ticks=range(-k, k + 1, 2))
        cb.set_label("prediction - reference (classes of 10 %): < 0 under-, > 0 over-estimated", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        ax.legend(handles=[_nodata_patch()], loc="lower right", fontsize=7, framealpha=0.8)
    else:
        codes = error_codes(ref, pred)
        cmap = ListedColormap([c for _, c in ERROR_CLASSES])
        ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(ERROR_CLASSES) - 0.5, interpolation="nearest")
        acc = 100 * float((codes == 0).sum()) / n_valid if n_valid else float("nan")
        ax.set_title(f"{chart} error ({acc:.1f} % correct)", fontsize=10)
        _below(ax, [Patch(facecolor=c, edgecolor="0.4", label=label) for label, c in ERROR_CLASSES], ncol=2)
    ax.set_axis_off()


def scene_figure(
    view: SceneView, prediction: Mapping[str, np.ndarray | None] | None = None, *, title: str | None = None,
    source: PathLike | None = None, inputs: bool = True,
) -> Any:  # fmt: skip
    """A scene's picture: inputs row (SAR composite, AMSR2, facts), then its charts.

    Without a prediction the three charts share one row; with one (chart -> reduced array, or
    None where absent) each chart gets a row: reference | prediction | error map (SIC: signed
    class difference; SOD/FLOE: correct / wrong / no reference). Returns the matplotlib Figure.

    Args:
        view: from :func:`load_scene_view`.
        prediction: from :func:`read_prediction_view`, or None.
        title: figure title (default: the scene key).
        source: prediction file named in the facts panel.
        inputs: draw the inputs row (when the scene has inputs).
    """
    plt = _pyplot()
    has_inputs = inputs and view.hh is not None
    chart_rows = 0 if (prediction is None and view.charts is None) else (1 if prediction is None else 3)
    nrows = int(has_inputs) + chart_rows
    if nrows == 0:
        nrows, has_inputs = 1, False
    aspect = view.display_shape[0] / view.display_shape[1]
    row_height = float(np.clip(4.8 * aspect, 2.0, 8.0)) + 1.5  # image + title + legend below
    fig, axes = plt.subplots(nrows, 3, figsize=(15, row_height * nrows), layout="constrained", squeeze=False)
    row = 0
    if has_inputs:
        _draw_composite(axes[0, 0], view)
        _draw_amsr2(fig, axes[0, 1], view)
        _draw_info(axes[0, 2], view, source)
        row = 1
    if prediction is None and view.charts is not None:
        for j, chart in enumerate(schema.CHARTS):
            _draw_chart(axes[row, j], view.charts[chart], chart, f"{chart}: {schema.CHART_DESCRIPTIONS[chart]}",
                        legend=True, missing="")  # fmt: skip
    elif prediction is not None:
        hide = not_sea(view)
        for i, chart in enumerate(schema.CHARTS):
            ref = None if view.charts is None else view.charts[chart]
            pred = prediction.get(chart)
            sea = pred  # the error map compares the prediction as scored, wherever the reference is valid
            if pred is not None and hide is not None and hide.shape == pred.shape:
                sea = np.where(hide, np.uint8(schema.CHART_FILL), pred)
            _draw_chart(axes[row + i, 0], ref, chart, f"{chart} reference", legend=ref is not None or pred is None,
                        missing="no reference chart", shape=view.display_shape)  # fmt: skip
            shown = f"{chart} prediction" + ("" if hide is None else " (land, no SAR data: grey)")
            _draw_chart(axes[row + i, 1], sea, chart, shown, legend=ref is None and pred is not None,
                        missing="chart missing in the prediction", shape=view.display_shape)  # fmt: skip
            _draw_error(fig, axes[row + i, 2], ref, pred, chart, view.display_shape)
    elif not has_inputs:
        _draw_info(axes[0, 0], view, source)
        axes[0, 1].set_axis_off()
        axes[0, 2].set_axis_off()
    fig.suptitle(title or view.key, fontsize=13)
    return fig


def show_scene(
    scene: PathLike, out: PathLike, *, prediction: PathLike | None = None, max_size: int = MAX_DISPLAY_SIZE,
    amsr2_channel: str = DEFAULT_AMSR2, dpi: int = 100,
) -> Path:  # fmt: skip
    """Draw a scene (and optionally a prediction against its reference) to a PNG, atomically.

    Args:
        scene: RTT train file, test ``_prep.nc`` or ``_prep_reference.nc``.
        out: PNG to write.
        prediction: an ``upload_package.nc`` holding this scene.
        max_size: longest side of the displayed scene (pixels).
        amsr2_channel: which ``btemp_*`` to show.
        dpi: resolution of the PNG.

    Returns:
        ``out``. Raises SceneError / SubmissionError naming the bad file.
    """
    view = load_scene_view(scene, max_size=max_size, amsr2_channel=amsr2_channel)
    pred = read_prediction_view(prediction, view) if prediction is not None else None
    fig = scene_figure(view, pred, title=Path(scene).name, source=prediction)
    return save_figure(fig, out, dpi=dpi)


# ----------------------------------------------------------------------------- other figures
def confusion_figure(cm: np.ndarray, chart: str) -> Any:
    """Confusion matrix (rows reference, columns prediction) as row percentages, counts in the cells."""
    plt = _pyplot()
    names = schema.CLASS_NAMES[chart]
    cm = np.asarray(cm)
    support = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape, dtype=float), where=support > 0)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 0.62 * n, 1.2 + 0.55 * n), layout="constrained")
    im = ax.imshow(share * 100, cmap="Blues", vmin=0, vmax=100)
    for (i, j), v in np.ndenumerate(share):
        if cm[i, j]:
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), [f"{nm} ({int(s):,})" for nm, s in zip(names, support[:, 0], strict=True)], fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("reference (valid pixels)")
    ax.set_title(f"{chart}: % of each reference class", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="%")
    return fig


def comparison_figure(reference: Mapping[str, np.ndarray], prediction: Mapping[str, np.ndarray],
                      path: PathLike, *, title: str = "") -> Path:  # fmt: skip
    """Reference (top) and prediction (bottom) of each chart, with legends; written to ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), constrained_layout=True)
    for j, chart in enumerate(schema.CHARTS):
        step = display_step(np.shape(reference[chart]))
        for i, (label, arrays) in enumerate((("reference", reference), ("prediction", prediction))):
            ax = axes[i, j]
            ax.imshow(chart_rgb(block_sample(arrays[chart], step), chart), interpolation="nearest")
            ax.set_title(f"{chart} {label}")
            ax.set_axis_off()
        axes[1, j].legend(handles=legend_handles(chart), loc="upper center", bbox_to_anchor=(0.5, -0.02),
                          ncol=3, fontsize=7, frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
