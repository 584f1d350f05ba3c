"""How strongly do the charts' classes follow the distance from open water, on real and synthetic charts?

    .venv/bin/python bench/chart_structure.py                       # real charts + a synthetic set (~1 min)
    .venv/bin/python bench/chart_structure.py --seeds 7000 7001 --scenes 20 [--height 600 --width 640]

For each chart, every ice polygon's mean distance from the water polygons (rasterised at 2 km for the
real charts, on the raw grid / 12 for synthetic scenes) is set against its SIC, SOD and FLOE class: the
Spearman rank correlation says how much of a class is "where the polygon lies" (new ice at the ice
edge, vast floes deep in the pack). Real charts come from ``shared/realdata`` (a CIS Eastern Arctic chart
and DMI regional charts, with the organisers' converter output for their classes); the CIS chart is also
cut into 400 km tiles, a scene's size. Synthetic scenes are generated with ``autoice.synth`` and split by
season (freezing: October-May). A second table counts the sea polygons (water or ice) of 100 km2 or more
in each 400 km tile of the real charts (a smaller chart is one tile) and in each synthetic scene (its
real-size equivalent area): how finely a scene's chart is cut. docs/synthetic.md quotes these figures.
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, stats

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
CHARTS = ("SIC", "SOD", "FLOE")
DMI_CHARTS = ("201304100920_CapeFarewell_RIC", "201307222045_CapeFarewell_RIC", "201308070805_NorthEast_RIC",
              "201308132150_Qaanaaq_RIC", "201404250420_CapeFarewell2_RIC", "201405011000_SouthWest_RIC")  # fmt: skip
MIN_POLYGONS = 8  #: a correlation over fewer ice polygons is not reported


def spearman(dist: list[float], cls: list[int]) -> float:
    """Spearman correlation, NaN when there are too few polygons or a single class."""
    if len(dist) < MIN_POLYGONS or len(set(cls)) < 2:
        return float("nan")
    return float(stats.spearmanr(dist, cls).statistic)


def polygon_correlations(pid: np.ndarray, classes: dict[int, tuple[int, int, int]], water: set[int]
                         ) -> dict[str, float]:  # fmt: skip
    """Per chart: Spearman of the ice polygons' class with their mean distance from water polygons.

    ``pid``: polygon id per cell (0 = none); ``classes``: SIC, SOD, FLOE class of each ice polygon (255 =
    masked); ``water``: ids of the water polygons.
    """
    is_water = np.isin(pid, list(water))
    if not is_water.any():
        return dict.fromkeys(CHARTS, float("nan"))
    dist = ndimage.distance_transform_edt(~is_water)
    ids = np.array(sorted(classes))
    with warnings.catch_warnings():  # a polygon too small to own a cell has no mean (dropped below)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = ndimage.mean(dist, pid, index=ids)
    size = ndimage.sum(np.ones_like(dist), pid, index=ids)
    out = {}
    for j, chart in enumerate(CHARTS):
        keep = [(m, classes[q][j]) for q, m, n in zip(ids, mean, size, strict=True) if n >= 3 and classes[q][j] != 255]
        out[chart] = spearman([m for m, _ in keep], [c for _, c in keep])
    return out


SCENE_KM = 400.0  #: side of a real scene (and of the real charts' tiles)
MIN_KM2 = 100.0  #: smallest polygon counted


def sea_polygons(pid: np.ndarray, sea: set[int], cell_km: float) -> int:
    """How many of the ``sea`` polygon ids cover at least MIN_KM2 of ``pid`` (cells of ``cell_km``)."""
    ids, n = np.unique(pid[pid > 0], return_counts=True)
    return int(sum(1 for q, k in zip(ids, n, strict=True) if int(q) in sea and k * cell_km**2 >= MIN_KM2))


def tile_counts(pid: np.ndarray, sea: set[int], cell_km: float, min_cover: float = 0.3) -> list[int]:
    """:func:`sea_polygons` per 400 km tile of a chart that covers at least ``min_cover`` of the tile."""
    side = int(round(SCENE_KM / cell_km))
    out = []
    for r in range(0, max(1, pid.shape[0] - side // 2), side):
        for c in range(0, max(1, pid.shape[1] - side // 2), side):
            tile = pid[r : r + side, c : c + side]
            if (tile > 0).mean() >= min_cover:
                out.append(sea_polygons(tile, sea, cell_km))
    return out


def _rasterise(polys: list[tuple[object, str, tuple[int, int, int] | None]], cell: float
               ) -> tuple[np.ndarray, dict[int, tuple[int, int, int]], set[int]]:  # fmt: skip
    import rasterio.features
    import rasterio.transform
    import shapely

    bounds = np.array(shapely.bounds([g for g, _, _ in polys]))
    x0, y0, x1, y1 = bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max()
    shape = (int((y1 - y0) / cell) + 1, int((x1 - x0) / cell) + 1)
    transform = rasterio.transform.from_origin(x0, y1, cell, cell)
    pid = rasterio.features.rasterize([(g, k + 1) for k, (g, _, _) in enumerate(polys)], out_shape=shape,
                                      transform=transform, fill=0)  # fmt: skip
    water = {k + 1 for k, (_, t, lab) in enumerate(polys) if t == "W" or (lab is not None and lab[0] == 0)}
    classes = {k + 1: lab for k, (_, t, lab) in enumerate(polys) if t == "I" and lab is not None and lab[0] != 0}
    return pid, classes, water


def cis_chart() -> list[tuple[object, str, tuple[int, int, int] | None]]:
    """The CIS Eastern Arctic chart of 2020-11-02: (geometry, POLY_TYPE, official classes or None)."""
    import pyogrio
    import shapely

    folder = REALDATA / "cis_chart"
    meta, _, geom, fields = pyogrio.raw.read(folder / "cis_SGRDREA_20201102T.gpkg")
    names = list(meta["fields"])
    with open(folder / "cis_SGRDREA_20201102_polygons_with_official_classes.csv", newline="") as fh:
        table = {int(r["ID_NEW"]): r for r in csv.DictReader(fh)}
    out = []
    for pid, kind, g in zip(fields[names.index("ID_NEW")], fields[names.index("POLY_TYPE")], shapely.from_wkb(geom),
                            strict=True):  # fmt: skip
        r = table.get(int(pid))
        out.append((g, str(kind), (int(r["SIC_class"]), int(r["SOD_class"]), int(r["FLOE_class"])) if r else None))
    return out


def dmi_chart(name: str) -> list[tuple[object, str, tuple[int, int, int] | None]]:
    """A DMI chart in EPSG:3413; range-coded CT rows (which the converter does not decode) count as unknown."""
    import pyogrio
    import pyproj
    import shapely

    folder = REALDATA / "dmi_charts"
    meta, _, geom, fields = pyogrio.raw.read(folder / f"{name}.shp")
    kinds = fields[list(meta["fields"]).index("POLY_TYPE")]
    with open(folder / "dmi_aari_charts_official_converter_output.csv", newline="") as fh:
        table = {int(r["poly_index_1based"]): r for r in csv.DictReader(fh) if r["chart"] == name}
    to_polar = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True)
    out = []
    for k, (kind, g) in enumerate(zip(kinds, shapely.from_wkb(geom), strict=True)):
        if g is None:
            continue
        r = table.get(k + 1)
        lab = None
        if r is not None and r["CT_is_range_code"].lower() in ("false", "0"):
            lab = (int(r["SIC_official"]), int(r["SOD_official"]), int(r["FLOE_official"]))
        out.append((shapely.transform(g, lambda xy: np.column_stack(to_polar.transform(xy[:, 0], xy[:, 1]))),
                    str(kind), lab))  # fmt: skip
    return out


def real_rows(counts: dict[str, list[int]] | None = None) -> list[tuple[str, dict[str, float]]]:
    """(label, correlations) of every real chart, and the CIS chart's 400 km tiles (median).

    ``counts`` receives each chart's :func:`tile_counts`.
    """
    counts = {} if counts is None else counts
    rows = []
    pid, classes, water = _rasterise(cis_chart(), 2000.0)
    counts["CIS Eastern Arctic 2020-11-02"] = tile_counts(pid, set(classes) | water, 2.0)
    rows.append(("CIS Eastern Arctic 2020-11-02, whole chart", polygon_correlations(pid, classes, water)))
    tiles = []
    for r in range(0, pid.shape[0], 200):  # 200 cells of 2 km
        for c in range(0, pid.shape[1], 200):
            tile = pid[r : r + 200, c : c + 200]
            inside = set(np.unique(tile).tolist())
            tiles.append(polygon_correlations(tile, {q: v for q, v in classes.items() if q in inside}, water & inside))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN charts: no tile has enough polygons
        rows.append(("CIS Eastern Arctic 2020-11-02, 400 km tiles (median)",
                     {c: float(np.nanmedian([t[c] for t in tiles])) for c in CHARTS}))  # fmt: skip
    for name in DMI_CHARTS:
        pid, classes, water = _rasterise(dmi_chart(name), 1000.0)
        counts[f"DMI {name}"] = tile_counts(pid, set(classes) | water, 1.0)
        rows.append((f"DMI {name}", polygon_correlations(pid, classes, water)))
    return rows


#: raw pixels per cell when a generated scene's polygons are read (12 x 40 m)
STEP = 12


def scene_polygons(scene: Any, step: int = STEP) -> tuple[np.ndarray, dict[int, tuple[int, int, int]], set[int]]:
    """A generated scene's polygon ids on its raw grid / ``step``, its ice polygons' classes and its water ids.

    Each polygon takes its most frequent label per chart; polygons labelled SIC 0 are the water.
    """
    from autoice import schema

    pid = np.nan_to_num(scene.dataset[schema.POLYGON_ICECHART].values, nan=0).astype(np.int64)[::step, ::step]
    labels = {c: scene.labels[c][::step, ::step] for c in CHARTS}
    classes, water = {}, set()
    for q in np.unique(pid[pid > 0]):
        m = pid == q
        lab = tuple(int(np.bincount(labels[c][m]).argmax()) for c in CHARTS)
        if lab[0] == 0:
            water.add(int(q))
        elif lab[0] != 255:
            classes[int(q)] = lab
    return pid, classes, water


def scene_correlations(scene: Any, step: int = STEP) -> dict[str, float]:
    """:func:`polygon_correlations` of a generated scene (``autoice.synth.Scene``) on its raw grid / ``step``."""
    return polygon_correlations(*scene_polygons(scene, step))


def scene_count(scene: Any, step: int = STEP) -> int:
    """:func:`sea_polygons` of a generated scene, its cells at their real-size equivalent (the scene 400 km)."""
    return _count(scene, scene_polygons(scene, step), step)


def _count(scene: Any, polygons: tuple[np.ndarray, dict[int, tuple[int, int, int]], set[int]], step: int) -> int:
    pid, classes, water = polygons
    return sea_polygons(pid, set(classes) | water, SCENE_KM * step / max(scene.labels["SIC"].shape))


def synthetic_rows(seeds: list[int], scenes: int, height: int, width: int, counts: dict[str, list[int]] | None = None
                   ) -> list[tuple[str, dict[str, float]]]:  # fmt: skip
    """Median correlation over generated scenes, freezing (October-May) and melt season apart.

    ``counts["synthetic"]`` receives each scene's :func:`scene_count`.
    """
    from autoice import synth
    from autoice.synth.surface import FREEZING_MONTHS

    counts = {} if counts is None else counts
    found: dict[str, list[dict[str, float]]] = {"freezing": [], "melt": []}
    for seed in seeds:
        for spec in synth.scene_specs(scenes, height=height, width=width, seed=seed):
            season = "freezing" if spec.start.month in FREEZING_MONTHS else "melt"
            scene = synth.generate_scene(spec, seed)
            polygons = scene_polygons(scene, STEP)  # once for both figures
            found[season].append(polygon_correlations(*polygons))
            counts.setdefault("synthetic", []).append(_count(scene, polygons, STEP))
    rows = []
    for season, found_rows in found.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = {c: float(np.nanmedian([r[c] for r in found_rows])) if found_rows else float("nan") for c in CHARTS}
        rows.append((f"synthetic, {season} season ({len(found_rows)} scenes, median)", med))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7000, 7001])
    ap.add_argument("--scenes", type=int, default=20, help="scenes per seed, default 20")
    ap.add_argument("--height", type=int, default=600)
    ap.add_argument("--width", type=int, default=640)
    args = ap.parse_args()
    if not REALDATA.is_dir():
        sys.exit(f"{REALDATA}: the real charts are not there (they come with the shared folder beside the repository)")
    counts: dict[str, list[int]] = {}
    print("| chart | SIC | SOD | FLOE |\n|---|---|---|---|")
    for label, r in [*real_rows(counts), *synthetic_rows(args.seeds, args.scenes, args.height, args.width, counts)]:
        print(f"| {label} | " + " | ".join("—" if np.isnan(r[c]) else f"{r[c]:+.2f}" for c in CHARTS) + " |")
    print(f"\n| chart | 400 km tiles (scenes) | sea polygons >= {MIN_KM2:.0f} km2: median | 10th-90th percentile |")
    print("|---|---|---|---|")
    for label, n in counts.items():
        q10, q50, q90 = np.quantile(n, [0.1, 0.5, 0.9]) if n else (np.nan,) * 3
        print(f"| {label} | {len(n)} | {q50:.0f} | {q10:.0f}-{q90:.0f} |")


if __name__ == "__main__":
    main()
