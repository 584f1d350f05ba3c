"""SIGRID-3 egg codes -> SIC / SOD / FLOE class images (pure numpy, no I/O).

A raw AI4Arctic scene carries its ice chart as ``polygon_icechart`` (polygon id per pixel,
float, NaN = no chart) plus ``polygon_codes`` (a ``;``-separated table, one row per polygon,
header ``schema.POLYGON_CODES_HEADER``). Decoding is split in two so that it stays fast on
scene-sized blocks: :func:`decode_polygon_codes` turns the table into one class per polygon
and chart (a :class:`ChartTable`), and :func:`rasterize` applies it to the image with a single
dense lookup table indexed by polygon id; pixels with NaN, a non-integer value or an id that
the table does not list become 255. :func:`decode_chart` does both.

``official`` mode reproduces the organisers' converter (``convert_raw_icechart.py`` of the
AutoICE starter kit), which made the released labels, step for step, per polygon row:

1. CT, CA, CB, CC go through ``schema.SIC_CODES``; SA, SB, SC through ``SOD_CODES``; FA, FB,
   FC through ``FLOE_CODES``. A code missing from its table keeps its raw value (range code 46
   stays 46, form 99 stays 99, -9 stays -9).
2. If CT > 0 and CA is not filled (-9), CA := CT.
3. Merge, separately for stages and forms: A gets CB added if A and B share a class, but CC
   *instead* if A and C share a class (a replacement, not a sum: with three partials of one
   class A under-counts); B gets CC added if B and C share a class (classes of -9 never merge).
4. Dominance: ``(max(merged) / CT) * 100 >= threshold * 100`` in float64 (IEEE division, so
   CT 0 passes for a positive partial and 0/0 fails); the class is that of the first largest
   merged partial (ties: A, then B, then C), else not filled.
5. FLOE is masked (255) for the polygon if any form maps to 255 (fast ice, pancake, level ice).
6. SIC = CT class, 0 for POLY_TYPE ``W``; SOD/FLOE not filled -> 255; where SIC is 0, SOD and
   FLOE are 0; any value 99 -> 255.

On top of that, in both modes (not in the organisers' code):

* a value that is still not a class of its chart (0 .. N_CLASSES - 1) nor 255 (SIC 46 from a
  range code, SIC -9 from an empty CT, an unlisted stage code) becomes 255 and is counted in
  :attr:`ChartTable.undecodable`, so no out-of-range class ever reaches a label image;
* a row whose code fields (CT .. CD; CF is ignored, CIS writes e.g. ``99-9`` there) are not
  all integers is undecodable: 255 in every chart, counted in every chart;
* polygons whose POLY_TYPE is neither ``I`` nor ``W`` (land ``L``, ``S``, ``N`` ...) are 255
  in every chart and not counted;
* blank rows (fixed-width padding) are skipped; if an id is listed twice, the last row wins
  (as in the organisers' converter, which paints rows in order).

``corrected`` mode keeps all of the above but fixes the two known quirks:

* range codes ``XY`` with 1 <= X < Y <= 9 ("X to Y tenths", e.g. 46 = 4-6/10), in CT and in
  the partials, decode to the class of the interval midpoint (X + Y) / 2 rounded half up:
  46 -> 5, 12 -> 2, 45 -> 5, 79 -> 8 (:func:`range_code_class`);
* the merge sums *all* partials of the same stage (resp. form) class; partials whose class is
  not filled stay on their own, and a partial concentration that is not a class 0..10 (not
  filled, unknown) contributes nothing. The largest class sum must reach ``threshold`` of CT;
  ties go to the class of the earliest partial (A, then B, then C).

Thresholds default to ``schema.THRESHOLDS["current"]`` (65 % / 65 %); the first release used
``THRESHOLDS["legacy"]`` (SOD 70 %, FLOE 50 %).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from autoice.errors import ChartError, ConfigError
from autoice.schema import (
    CHART_DTYPE,
    CHART_FILL,
    CHARTS,
    FLOE_CODES,
    N_CLASSES,
    NOT_FILLED,
    POLY_TYPE_ICE,
    POLY_TYPE_WATER,
    POLYGON_CODES,
    POLYGON_CODES_HEADER,
    POLYGON_ICECHART,
    SIC_CODES,
    SOD_CODES,
    THRESHOLDS,
    UNKNOWN,
)

MODES: tuple[str, ...] = ("official", "corrected")

_COL = {name: i for i, name in enumerate(POLYGON_CODES_HEADER)}
#: Integer code fields, in header order (CF is free text in CIS charts and ignored).
_CODE_FIELDS: tuple[str, ...] = tuple(n for n in POLYGON_CODES_HEADER if n not in ("id", "CF", "POLY_TYPE"))
_CODE_COLS = [_COL[n] for n in _CODE_FIELDS]
_K = {name: i for i, name in enumerate(_CODE_FIELDS)}  # field -> column of the parsed code matrix
_CONC = [_K["CA"], _K["CB"], _K["CC"]]
_STAGE = [_K["SA"], _K["SB"], _K["SC"]]
_FORM = [_K["FA"], _K["FB"], _K["FC"]]
_CODE = re.compile(r"[+-]?[0-9]{1,9}")  # an integer code (longer digit runs are not SIGRID codes)
_ID = re.compile(r"\+?[0-9]{1,18}")  # a non-negative polygon id that fits int64
#: Largest id span served by a dense lookup table in :func:`rasterize`; beyond it, a sorted search.
_DENSE_LIMIT = 1 << 22


@dataclass(frozen=True)
class ChartTable:
    """One class per polygon and chart, decoded from a ``polygon_codes`` table.

    Attributes:
        ids: int64 polygon id of each table row.
        classes: ``"SIC"``/``"SOD"``/``"FLOE"`` -> uint8 class per row (255 = masked).
        undecodable: chart -> number of I/W polygons set to 255 because a code could not be decoded.
        changed: corrected mode only: rows whose (SIC, SOD, FLOE) differ from the official decoding.
        mode: ``"official"`` or ``"corrected"``.
    """

    ids: np.ndarray
    classes: dict[str, np.ndarray]
    undecodable: dict[str, int]
    changed: int | None
    mode: str

    def _unique(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique ids and their (3, n) classes; for a repeated id the last row wins."""
        n = self.ids.size
        stacked = np.stack([self.classes[c] for c in CHARTS]) if n else np.zeros((len(CHARTS), 0), CHART_DTYPE)
        uniq, first_rev = np.unique(self.ids[::-1], return_index=True)
        return uniq, stacked[:, n - 1 - first_rev]

    def lut(self) -> np.ndarray:
        """Dense lookup table, shape ``(3, max_id + 2)`` uint8, rows in ``schema.CHARTS`` order.

        Column ``i`` holds the classes of polygon id ``i`` (255 for ids the table does not list);
        the last column is all 255 and serves NaN / unknown pixels.
        """
        uniq, cls = self._unique()
        size = (int(uniq[-1]) + 2) if uniq.size else 1
        table = np.full((len(CHARTS), size), CHART_FILL, dtype=CHART_DTYPE)
        table[:, uniq] = cls
        return table


def range_code_class(code: int) -> int | None:
    """SIC class of a SIGRID range code ``XY`` (1 <= X < Y <= 9, "X to Y tenths"), else None.

    The class is the interval midpoint (X + Y) / 2 rounded half up: 46 -> 5, 12 -> 2, 79 -> 8.
    Used by the ``corrected`` mode only; the organisers' converter leaves these codes undecoded.
    """
    code = int(code)
    if not 12 <= code <= 89:
        return None
    low, high = divmod(code, 10)
    if not 1 <= low < high <= 9:
        return None
    return (low + high + 1) // 2


_RANGE_CODES: dict[int, int] = {c: k for c in range(100) if (k := range_code_class(c)) is not None}


def _map_codes(values: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Map SIGRID codes through ``table``; codes it does not list keep their raw value."""
    keys = np.fromiter(sorted(table), dtype=np.int64)
    vals = np.array([table[k] for k in keys.tolist()], dtype=np.int64)
    pos = np.clip(np.searchsorted(keys, values), 0, keys.size - 1)
    return np.where(keys[pos] == values, vals[pos], values)


def _check_threshold(name: str, value: float | None, default: float) -> float:
    if value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number in (0, 1], got {value!r}") from None
    if not 0.0 < out <= 1.0:
        raise ConfigError(f"{name}: expected a number in (0, 1], got {value!r}")
    return out


def _row_text(row: object, k: int) -> str:
    if isinstance(row, bytes | np.bytes_):
        try:
            return row.decode("ascii")
        except UnicodeDecodeError:
            raise ChartError(f"{POLYGON_CODES}: row {k} is not ASCII text") from None
    if isinstance(row, str):
        return row
    raise ChartError(f"{POLYGON_CODES}: row {k} is a {type(row).__name__}, expected text")


def _parse(rows: Iterable[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows -> (ids, codes (n, 12) int64 with -9 in bad rows, bad-row mask, is-ice-or-water, is-water)."""
    if isinstance(rows, str | bytes):
        raise ChartError(f"{POLYGON_CODES}: expected a sequence of rows, got one string")
    if hasattr(rows, "__array__") and not isinstance(rows, np.ndarray):  # e.g. an xarray DataArray
        rows = np.asarray(rows)
    if isinstance(rows, np.ndarray) and rows.ndim != 1:
        raise ChartError(f"{POLYGON_CODES}: expected a 1-D array of rows, got shape {rows.shape}")
    lines = [(k, text) for k, row in enumerate(rows) if (text := _row_text(row, k).strip())]
    if not lines:
        raise ChartError(f"{POLYGON_CODES}: empty table, missing header row {';'.join(POLYGON_CODES_HEADER)!r}")
    k0, header = lines[0]
    if tuple(f.strip() for f in header.split(";")) != POLYGON_CODES_HEADER:
        raise ChartError(
            f"{POLYGON_CODES}: row {k0} should be the header {';'.join(POLYGON_CODES_HEADER)!r}, got {header[:200]!r}"
        )
    n, nf = len(lines) - 1, len(POLYGON_CODES_HEADER)
    ids = np.empty(n, np.int64)
    codes = np.full((n, len(_CODE_FIELDS)), NOT_FILLED, np.int64)
    bad = np.zeros(n, bool)
    ptype = []
    for i, (k, text) in enumerate(lines[1:]):
        fields = [f.strip() for f in text.split(";")]
        if len(fields) != nf:
            raise ChartError(f"{POLYGON_CODES}: row {k} has {len(fields)} fields, expected {nf}: {text[:200]!r}")
        pid = fields[_COL["id"]]
        if not _ID.fullmatch(pid):
            raise ChartError(f"{POLYGON_CODES}: row {k} has polygon id {pid!r}, expected a non-negative integer")
        ids[i] = int(pid)
        vals = [fields[c] for c in _CODE_COLS]
        if all(_CODE.fullmatch(v) for v in vals):
            codes[i] = [int(v) for v in vals]
        else:
            bad[i] = True
        ptype.append(fields[_COL["POLY_TYPE"]].upper())
    types = np.array(ptype, dtype=str) if ptype else np.zeros(0, dtype=str)
    water = types == POLY_TYPE_WATER.upper()
    labelled = water | (types == POLY_TYPE_ICE.upper())
    return ids, codes, bad, labelled, water


def _dominant(conc: np.ndarray, cls: np.ndarray, ct: np.ndarray, threshold: float, corrected: bool) -> np.ndarray:
    """Class of the dominant (merged) partial per row, or -9 where none reaches ``threshold`` of CT."""
    filled = cls != NOT_FILLED
    if corrected:
        weight = np.where((conc >= 0) & (conc < N_CLASSES["SIC"]), conc, 0)
        same = (cls[:, :, None] == cls[:, None, :]) & filled[:, :, None]
        merged = np.where(filled, (same * weight[:, None, :]).sum(axis=2), weight)
    else:  # the organisers' pairwise merge, quirk included
        a, b, c = cls.T
        add_a = np.where((a == c) & filled[:, 0], conc[:, 2], np.where((a == b) & filled[:, 0], conc[:, 1], 0))
        add_b = np.where((b == c) & filled[:, 1], conc[:, 2], 0)
        merged = conc + np.stack([add_a, add_b, np.zeros_like(add_a)], axis=1)
    best = merged.argmax(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (merged.max(axis=1) / ct) * 100
    return np.where(ratio >= threshold * 100, cls[np.arange(cls.shape[0]), best], NOT_FILLED)


def _classes(codes: np.ndarray, water: np.ndarray, corrected: bool, thr: dict[str, float]) -> dict[str, np.ndarray]:
    """Codes -> int64 chart values per row, before range checks (organisers' steps, see module doc)."""
    conc_table = {**SIC_CODES, **_RANGE_CODES} if corrected else SIC_CODES
    ct = _map_codes(codes[:, _K["CT"]], conc_table)
    conc = _map_codes(codes[:, _CONC], conc_table)
    single = (ct > SIC_CODES[0]) & (conc[:, 0] == NOT_FILLED)
    conc[single, 0] = ct[single]
    stage = _map_codes(codes[:, _STAGE], SOD_CODES)
    form = _map_codes(codes[:, _FORM], FLOE_CODES)

    sod = _dominant(conc, stage, ct, thr["SOD"], corrected)
    floe = _dominant(conc, form, ct, thr["FLOE"], corrected)
    floe[(form == CHART_FILL).any(axis=1)] = CHART_FILL
    sic = np.where(water, SIC_CODES[0], ct)
    sod[sod == NOT_FILLED] = CHART_FILL
    floe[floe == NOT_FILLED] = CHART_FILL
    open_water = sic == 0
    sod[open_water] = 0
    floe[open_water] = 0
    out = {"SIC": sic, "SOD": sod, "FLOE": floe}
    for values in out.values():
        values[values == UNKNOWN] = CHART_FILL
    return out


def _checked(
    values: dict[str, np.ndarray], bad: np.ndarray, labelled: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Our additions: out-of-range values and unreadable rows -> 255 (counted), non-I/W rows -> 255."""
    classes: dict[str, np.ndarray] = {}
    undecodable: dict[str, int] = {}
    for chart in CHARTS:
        v = values[chart]
        invalid = (((v < 0) | (v >= N_CLASSES[chart])) & (v != CHART_FILL)) | bad
        classes[chart] = np.where(invalid | ~labelled, CHART_FILL, v).astype(CHART_DTYPE)
        undecodable[chart] = int(np.count_nonzero(invalid & labelled))
    return classes, undecodable


def decode_polygon_codes(
    rows: Sequence[str] | np.ndarray,
    *,
    mode: str = "official",
    sod_threshold: float | None = None,
    floe_threshold: float | None = None,
) -> ChartTable:
    """Decode a ``polygon_codes`` table into one SIC/SOD/FLOE class per polygon.

    Args:
        rows: the table's rows (str or bytes), the first one the header ``schema.POLYGON_CODES_HEADER``.
        mode: ``"official"`` (the organisers' converter, bit for bit) or ``"corrected"`` (range codes
            decoded, partials of one class summed); see the module docstring.
        sod_threshold: share of CT the dominant stage must reach; default ``THRESHOLDS["current"]``.
        floe_threshold: same for the form; default ``THRESHOLDS["current"]``.

    Returns:
        The per-polygon classes; codes that cannot be decoded are 255 and counted in ``undecodable``.

    Raises:
        ChartError: the table cannot be read at all (no or wrong header, wrong number of fields on
            a row, an id that is not a non-negative integer). Rows are numbered from 0 = header.
        ConfigError: unknown mode or a threshold outside (0, 1].
    """
    if mode not in MODES:
        raise ConfigError(f"chart mode: expected one of {', '.join(MODES)}, got {mode!r}")
    thr = {
        "SOD": _check_threshold("sod_threshold", sod_threshold, THRESHOLDS["current"]["SOD"]),
        "FLOE": _check_threshold("floe_threshold", floe_threshold, THRESHOLDS["current"]["FLOE"]),
    }
    ids, codes, bad, labelled, water = _parse(rows)
    classes, undecodable = _checked(_classes(codes, water, mode == "corrected", thr), bad, labelled)
    changed = None
    if mode == "corrected":
        official, _ = _checked(_classes(codes, water, False, thr), bad, labelled)
        differs = np.zeros(ids.size, bool)
        for chart in CHARTS:
            differs |= classes[chart] != official[chart]
        changed = int(np.count_nonzero(differs))
    return ChartTable(ids=ids, classes=classes, undecodable=undecodable, changed=changed, mode=mode)


def _pixel_ids(image: np.ndarray, max_id: int) -> np.ndarray:
    """Integer polygon id per pixel, ``max_id + 1`` where it holds none (NaN, fraction, out of range)."""
    index_type = np.int32 if max_id < np.iinfo(np.int32).max else np.int64
    if image.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            idx = image.astype(index_type)  # NaN and huge values give garbage here, caught below
        np.clip(idx, 0, max_id + 1, out=idx)
        np.putmask(idx, idx != image, max_id + 1)  # NaN, fractions, anything that was clipped
    elif image.dtype.kind in "iu":
        idx = image.astype(np.int64)  # a copy: the caller's array is never written
        np.putmask(idx, (idx < 0) | (idx > max_id), max_id + 1)
        idx = idx.astype(index_type, copy=False)
    else:
        raise ChartError(f"{POLYGON_ICECHART}: expected polygon ids (numbers), got dtype {image.dtype}")
    return idx


def rasterize(polygon_icechart: np.ndarray, table: ChartTable) -> dict[str, np.ndarray]:
    """Paint the per-polygon classes of ``table`` onto a ``polygon_icechart`` block.

    One gather through a dense lookup table indexed by polygon id (a sorted search instead when
    the ids are too sparse for a dense table), never a mask per polygon.

    Args:
        polygon_icechart: polygon id per pixel, any shape, float (NaN = no chart) or integer;
            a masked array's masked pixels count as no chart. It is not modified.
        table: from :func:`decode_polygon_codes`.

    Returns:
        ``{"SIC": ..., "SOD": ..., "FLOE": ...}``, uint8 arrays of the input's shape; 255 where the
        pixel has no id, an id the table does not list, or a masked class.

    Raises:
        ChartError: the image does not hold numbers.
    """
    image = polygon_icechart
    if np.ma.isMaskedArray(image):
        image = np.ma.filled(image.astype(np.float64), np.nan)
    image = np.asarray(image)
    uniq, cls = table._unique()
    if uniq.size == 0:
        return {c: np.full(image.shape, CHART_FILL, CHART_DTYPE) for c in CHARTS}
    max_id = int(uniq[-1])
    idx = _pixel_ids(image, max_id)
    # The last lookup column is all 255: index max_id + 1 (no id) lands there. Indices are never
    # negative: np.take is several times slower when it has to wrap them.
    if max_id + 2 <= _DENSE_LIMIT:
        lut = table.lut()
    else:  # sparse ids: position in the sorted id list
        lut = np.concatenate([cls, np.full((len(CHARTS), 1), CHART_FILL, CHART_DTYPE)], axis=1)
        pos = np.minimum(np.searchsorted(uniq, idx), uniq.size - 1)
        idx = np.where(uniq[pos] == idx, pos, uniq.size)
    out = np.take(lut, idx, axis=1)
    return {chart: out[i] for i, chart in enumerate(CHARTS)}


def decode_chart(
    polygon_icechart: np.ndarray,
    rows: Sequence[str] | np.ndarray,
    *,
    mode: str = "official",
    sod_threshold: float | None = None,
    floe_threshold: float | None = None,
) -> tuple[dict[str, np.ndarray], ChartTable]:
    """Decode ``polygon_codes`` and paint it onto ``polygon_icechart`` in one call.

    Returns:
        The uint8 SIC/SOD/FLOE images (255 = masked) and the decoded table (for its counts).
    """
    table = decode_polygon_codes(rows, mode=mode, sod_threshold=sod_threshold, floe_threshold=floe_threshold)
    return rasterize(polygon_icechart, table), table
