"""Describe a scene file for people: kind, grids, variables, chart histograms, input statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autoice import charts, schema
from autoice.scenes import SceneKind, has_charts, kind_from_name, open_scene, read_variable


def _histogram(values: np.ndarray, chart: str) -> dict[str, Any]:
    counts = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256)
    total = int(counts.sum())
    valid = total - int(counts[schema.CHART_FILL])
    classes = {str(k): int(counts[k]) for k in range(schema.N_CLASSES[chart])}
    return {"classes": classes, "masked": int(counts[schema.CHART_FILL]), "masked_share": counts[255] / max(total, 1),
            "valid": valid}  # fmt: skip


def describe(path: str | Path, *, stats: bool = True) -> dict[str, Any]:
    """Facts about one scene file as a JSON-ready dict (validates the file first)."""
    p = Path(path)
    kind = kind_from_name(p.name)
    with open_scene(p) as ds:
        if kind == SceneKind.TRAIN and not has_charts(ds):
            kind = SceneKind.TEST
        name = schema.parse_raw_name(p.name) if kind == SceneKind.RAW else schema.parse_rtt_name(p.name)
        info: dict[str, Any] = {
            "file": str(p),
            "kind": kind.value,
            "scene_key": name.key,
            "service": name.service,
            "start": name.start,
            "month": name.month,
            "attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in ds.attrs.items()},
            "variables": {n: {"dtype": str(v.dtype), "dims": list(v.dims), "shape": list(v.shape)}
                          for n, v in ds.variables.items()},  # fmt: skip
        }
        if kind == SceneKind.RAW:
            full = ds[schema.SAR_VARIABLES[0]]
            info["grids"] = {"full": list(full.shape), "pixel_spacing_m": schema.RAW_PIXEL_SPACING,
                             "2km": list(ds[schema.COARSE_VARIABLES[0]].shape)}  # fmt: skip
            rows = [str(r) for r in read_variable(ds, schema.POLYGON_CODES).ravel()]
            decoded, table = charts.decode_chart(read_variable(ds, schema.POLYGON_ICECHART), rows)
            types = [r.split(";")[-1] for r in rows[1:]]
            info["polygons"] = {t: types.count(t) for t in sorted(set(types))}
            info["undecodable_polygons"] = dict(table.undecodable)
            info["charts"] = {c: _histogram(decoded[c], c) for c in schema.CHARTS}
            names = (*schema.SAR_VARIABLES, schema.DISTANCE_VARIABLE, *schema.COARSE_VARIABLES)
        else:
            if kind != SceneKind.REFERENCE:
                info["grids"] = {
                    "full": [ds.sizes[d] for d in schema.FULL_DIMS],
                    "pixel_spacing_m": schema.RTT_PIXEL_SPACING,
                    "2km": [ds.sizes[d] for d in schema.COARSE_DIMS],
                }
            else:
                info["grids"] = {"full": [ds.sizes[d] for d in schema.FULL_DIMS]}
            if has_charts(ds):
                info["charts"] = {c: _histogram(read_variable(ds, c), c) for c in schema.CHARTS}
            names = schema.INPUT_VARIABLES if kind != SceneKind.REFERENCE else ()
        if stats and names:
            info["inputs"] = {n: _stats(read_variable(ds, n), n, scaled=kind != SceneKind.RAW) for n in names}
    return info


def _stats(x: np.ndarray, name: str, *, scaled: bool) -> dict[str, float]:
    x = x.astype(np.float64, copy=False)
    if scaled:
        mean, std = schema.global_meanstd()[name]
        # In RTT files 0 is no-data on the full grid (coarse variables have no mask); NaN/Inf are no data anywhere,
        # as in the model inputs (autoice.data.inputs.read_channel).
        valid = np.isfinite(x)
        if name in schema.FULL_GRID_INPUTS:
            valid &= x != schema.INPUT_FILL
        phys = x[valid] * std + mean
    else:
        valid = np.isfinite(x)
        phys = x[valid]
    if phys.size == 0:
        return {"valid_share": 0.0}
    return {"valid_share": float(valid.mean()), "mean": float(phys.mean()), "std": float(phys.std()),
            "min": float(phys.min()), "max": float(phys.max())}  # fmt: skip


def format_description(info: dict[str, Any]) -> str:
    """Readable multi-line text for :func:`describe`'s dict."""
    out = [f"{info['file']}", f"  kind: {info['kind']}   scene: {info['scene_key']}   month: {info['month']}"]
    g = info.get("grids", {})
    if "full" in g:
        line = f"  full grid: {g['full'][0]} x {g['full'][1]}"
        if "pixel_spacing_m" in g:
            line += f" at {g['pixel_spacing_m']} m"
        if "2km" in g:
            line += f"   2 km grid: {g['2km'][0]} x {g['2km'][1]}"
        out.append(line)
    out.append(f"  variables: {len(info['variables'])}")
    if "polygons" in info:
        out.append("  polygons: " + ", ".join(f"{t}={n}" for t, n in info["polygons"].items()))
        bad = {c: n for c, n in info["undecodable_polygons"].items() if n}
        if bad:
            out.append("  undecodable polygons (-> 255): " + ", ".join(f"{c}={n}" for c, n in bad.items()))
    for chart, h in info.get("charts", {}).items():
        valid = max(h["valid"], 1)
        parts = [f"{k}:{100 * v / valid:.1f}%" for k, v in h["classes"].items() if v]
        out.append(f"  {chart:<4} masked {100 * h['masked_share']:.1f}%  valid: " + " ".join(parts))
    if "inputs" in info:
        out.append("  inputs (physical units over valid pixels): mean / std [min, max], valid share")
        for n, s in info["inputs"].items():
            if "mean" in s:
                out.append(f"    {n:<22} {s['mean']:9.3f} / {s['std']:8.3f} [{s['min']:9.3f}, {s['max']:9.3f}]"
                           f"  {100 * s['valid_share']:.0f}%")  # fmt: skip
            else:
                out.append(f"    {n:<22} no valid pixels")
    return "\n".join(out)
