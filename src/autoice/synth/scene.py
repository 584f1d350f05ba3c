"""One synthetic scene end to end: chart, true surface, sensors, raw file; and whole synthetic sets.

Scenes smaller than the real ~400 km are *miniatures*: structure tied to the scene (polygons, coast,
lead systems, weather, AMSR2 footprints, distances to land, the geographic extent of the tie points)
shrinks with the scene, so every size holds the full variety and the same statistics; per-pixel
physics (speckle, floes, ridges, wind streaks, noise-floor artefacts) stays at the real 40 m pixel size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

from autoice import schema
from autoice.errors import AutoiceError
from autoice.synth import icechart, radiometer, sar, surface, weather
from autoice.synth.fields import block_counts, noise, upsample
from autoice.synth.icechart import N_SURF, Polygon, Targets
from autoice.synth.specs import REGIONS, SceneSpec, rng, scene_quantiles, scene_specs, season

#: Raw extent (pixels at 40 m) of a real scene side; smaller scenes are miniatures of it.
FULL_EXTENT_PX = 10400
PX_PER_KM = sar.PX_PER_KM
#: Chart polygons per scene, log-uniform: real charts cut in 400 km tiles hold a median of 8 (CIS Eastern
#: Arctic; 10th-90th percentile 1-22) and 2-16 (DMI regional charts) sea polygons of 100 km2 or more
#: (bench/chart_structure.py, docs/synthetic.md); 20-90 before 2026-12-04 gave 32 (18-60), now 14 (7-25).
N_POLY = (6, 36)


@dataclass
class SynthResult:
    """Files written by :func:`synthesize`, sorted by scene index within each list."""

    raw: list[Path] = field(default_factory=list)
    train: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)
    reference: list[Path] = field(default_factory=list)
    skipped: int = 0  #: scenes whose outputs already existed (not overwritten)
    replaced: int = 0  #: scenes made again because an existing output was damaged


def _land(r: np.random.Generator, shape: tuple[int, int], zoom: float, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Land mask with about ``share`` of the scene and its height field: a coast on one side, fjords, islands."""
    terrain = noise(r, shape, 60 * PX_PER_KM * zoom, octaves=3, gain=0.25)
    angle = r.uniform(0, 2 * np.pi)
    yy = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    # the ramp's weight sets how many islands lie offshore; 3 (was 1.5) brings the mean distance_map within
    # 0.1 sd of the organisers' global mean on sets of tuning seeds (100-103, 200-209, 3000-3003)
    terrain += np.float32(3.0) * (np.cos(angle) * yy + np.sin(angle) * xx)
    if share <= 0.005:
        return np.zeros(shape, bool), terrain
    sub = terrain[:: max(1, shape[0] // 300), :: max(1, shape[1] // 300)]
    return terrain > np.quantile(sub, 1 - share), terrain


def _voronoi(points: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    _, idx = cKDTree(points).query(np.column_stack([gy.ravel(), gx.ravel()]), workers=1)
    return idx.reshape(gy.shape).astype(np.int32)


@dataclass
class Scene:
    """One generated scene: the raw file's content, the chart's labels and the truth under them."""

    dataset: xr.Dataset  #: raw layout (spec §3), physical units, NaN outside the swath
    labels: dict[str, np.ndarray]  #: chart classes SIC/SOD/FLOE, uint8 on the raw grid, 255 = masked
    surf: np.ndarray  #: true surface class per raw pixel (:mod:`autoice.synth.icechart` WATER..LAND)
    concentration: np.ndarray  #: true ice concentration (smooth field, raw grid)
    lead: np.ndarray  #: lead and crack pixels inside pack ice
    weather: weather.Weather  #: true weather and ERA5 on the 2 km grid


def generate_raw(spec: SceneSpec, seed: int) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """Generate one synthetic scene in the raw (40 m) layout, with the labels its chart carries.

    Args:
        spec: the scene (from :func:`scene_specs`).
        seed: the dataset seed (with ``spec.index`` it fixes every random draw).

    Returns:
        ``(dataset, labels)``: the raw dataset (spec §3 layout, physical units, NaN outside the
        swath) and the chart's classes ``{"SIC", "SOD", "FLOE"}`` as uint8 (raw grid, 255 = masked).
    """
    scene = generate_scene(spec, seed)
    return scene.dataset, scene.labels


def generate_scene(spec: SceneSpec, seed: int) -> Scene:
    """Generate one scene with its truth (see :func:`generate_raw`; the truth is for tests and studies).

    The steps, in the order that fixes every random draw: where the swath has data and the chart covers the
    sea, the chart's polygons and the truth's displaced ones, their egg codes, the true surface under them,
    weather and AMSR2, SAR, and the distance to land.
    """
    rows, cols = 2 * spec.height, 2 * spec.width
    shape = (rows, cols)
    extent = float(max(rows, cols))
    zoom = float(np.clip(extent / FULL_EXTENT_PX, 0.01, 1.0))  # miniature factor
    month = spec.start.month
    region = REGIONS[spec.service][spec.region]
    targets = Targets.from_real(spec.real, np.asarray(region.stages[season(month)], float))
    rng_geo, rng_ice, rng_sar, rng_met = (rng(seed, spec.index, k) for k in (1, 2, 3, 4))

    theta_col, flip, nodata = _swath(rng_geo, shape)
    chart_gap, land, terrain = _coverage(rng_geo, nodata, targets.masked_share, zoom)
    grid = _polygon_grids(rng_geo, rng_ice, shape)
    polys = _egg_codes(rng_ice, grid, spec, targets, sea=~land, charted=~land & ~chart_gap)
    pid = grid.full(grid.chart)
    pid[land] = grid.n_poly + 1
    labels = _labels(polys, pid)

    # ---- the true surface under the chart ------------------------------------------------------------------
    c_grid = surface.true_concentration(rng_ice, polys, grid.true)
    truth = surface.build(rng_ice, polys, grid.full(grid.true), c_grid, land, month=month, extent_px=extent)
    del c_grid

    # ---- weather, ERA5, AMSR2 on the 2 km grid ---------------------------------------------------------------
    fr = block_counts(truth.surf, N_SURF, schema.CELL_RAW)
    q = scene_quantiles(seed, spec.index)
    wx_ = weather.make(rng_met, fr.shape[:2], month=month, lat=float(np.mean(region.lat)), zoom=zoom, quantiles=q)
    btemp = radiometer.brightness(rng_met, fr, wx_, month=month, zoom=zoom, quantile=float(q[5]))

    # ---- SAR ---------------------------------------------------------------------------------------------------
    mean_dir = float(np.angle(np.mean(np.exp(1j * wx_.direction))))
    speed_px = upsample(wx_.speed.astype(np.float32), shape) * sar.wind_texture(rng_sar, shape, mean_dir)
    dir_px = upsample(np.cos(2 * wx_.direction).astype(np.float32), shape)
    melt = {6: 0.5, 7: 1.0, 8: 0.7}.get(month, 0.0)
    hh, hv = sar.backscatter(rng_sar, truth, theta_col, speed_px, dir_px, terrain=terrain if land.any() else None,
                             melt=melt)  # fmt: skip
    del speed_px, dir_px, terrain
    surf, conc, lead = truth.surf, truth.concentration, truth.lead
    del truth  # its texture and floe fields are two float32 copies of the raw grid
    hh[nodata] = np.nan
    hv[nodata] = np.nan

    zones = _distance_zones(rng_geo, land, zoom)
    zones[nodata] = np.nan
    polygon = pid.astype(np.float32)
    polygon[nodata | chart_gap] = np.nan
    del pid
    codes = [";".join(schema.POLYGON_CODES_HEADER)]
    codes += [poly.code_row(p + 1) for p, poly in enumerate(polys)]
    codes.append(Polygon("L").code_row(grid.n_poly + 1))  # land: POLY_TYPE L, every code not filled: no label
    for name in schema.CHARTS:
        labels[name][nodata | chart_gap] = schema.CHART_FILL

    ds = _assemble(
        spec,
        shape=shape,
        zoom=zoom,
        theta_col=theta_col,
        flip=flip,
        rng=rng_geo,
        hh=hh,
        hv=hv,
        zones=zones,
        polygon=polygon,
        codes=codes,
        swath=sar.swath_segments(theta_col, rows, nodata),
        coarse={**btemp, **wx_.era5},
    )
    return Scene(ds, labels, surf, conc, lead, wx_)


def _swath(r: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, bool, np.ndarray]:
    """Incidence angle per sample, whether the swath is flipped, and the no-data edges (wiggly sides, top rows)."""
    rows, cols = shape
    theta_col, flip = sar.incidence(r, cols)
    edge_w = max(2, int(0.02 * cols))
    left = edge_w * (0.3 + np.abs(noise(r, (rows, 1), rows / 6, octaves=3)[:, 0]))
    right = cols - 1 - edge_w * (0.3 + np.abs(noise(r, (rows, 1), rows / 6, octaves=3)[:, 0]))
    top = int(r.integers(0, max(1, rows // 100) + 1))
    c_idx = np.arange(cols, dtype=np.float32)[None, :]
    nodata = (c_idx < left[:, None]) | (c_idx > right[:, None])
    nodata[:top] = True
    return theta_col, flip, nodata


def _coverage(r: np.random.Generator, nodata: np.ndarray, masked_share: float, zoom: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Where the chart ends and where land is: together with the no-data edges, the template's masked share.

    Returns the chart gap (sea the chart does not cover), the land mask and the land's height field.
    """
    rows, cols = shape = nodata.shape
    chart_gap = np.zeros(shape, bool)
    masked_left = max(0.0, masked_share - float(nodata.mean()))
    # chart gap against land: no real figure splits the masked share; U[0.3, 0.8] (was U[0.2, 0.7]) with the coast
    # of _land puts the mean distance zone on the organisers' (23.6), where too much land pulled it 2.6 zones low
    gap_share = masked_left * float(r.uniform(0.3, 0.8)) if masked_left > 0.03 else 0.0
    if gap_share > 0:  # the chart ends along a wiggly line across the image (a regional chart's border)
        a = r.uniform(0, 2 * np.pi)
        yy = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
        xx = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
        side = np.cos(a) * yy + np.sin(a) * xx + 0.08 * noise(r, shape, max(shape) / 4, octaves=3)
        side[nodata] = -np.inf
        sub = side[:: max(1, rows // 300), :: max(1, cols // 300)]
        chart_gap = side > np.quantile(sub, 1 - gap_share)
    # land: the rest of the masked share (land also falls in gaps: its share of the rest)
    rest = 1 - float(nodata.mean()) - float(chart_gap.mean())
    land_share = float(np.clip((masked_left - chart_gap.mean()) / max(1e-6, rest), 0, 0.95))
    land, terrain = _land(r, shape, zoom, land_share)
    return chart_gap, land, terrain


@dataclass
class _Grids:
    """The chart's polygons and the truth's on a coarse grid (``step`` raw pixels per cell)."""

    shape: tuple[int, int]  #: raw grid
    step: int
    n_poly: int
    chart: np.ndarray  #: chart polygon index (0..n_poly - 1) per cell: generalised edges
    true: np.ndarray  #: true polygon index per cell: the same polygons, edges displaced and rougher

    @property
    def cells(self) -> tuple[int, int]:
        return self.chart.shape

    def full(self, vor: np.ndarray) -> np.ndarray:
        """Polygon ids 1..n_poly per raw pixel."""
        rows, cols = self.shape
        return np.repeat(np.repeat(vor + 1, self.step, axis=0), self.step, axis=1)[:rows, :cols]

    def coarse(self, mask: np.ndarray) -> np.ndarray:
        """A raw-grid mask sampled on the polygon grid."""
        return mask[:: self.step, :: self.step][: self.cells[0], : self.cells[1]]


def _polygon_grids(rng_geo: np.random.Generator, rng_ice: np.random.Generator, shape: tuple[int, int]) -> _Grids:
    """Chart polygons (noise-warped Voronoi cells) and the true boundaries (displaced by a few km, rougher)."""
    rows, cols = shape
    step = max(1, int(np.ceil(np.sqrt(rows * cols / 1.5e6))))
    grid = (-(-rows // step), -(-cols // step))
    n_poly = int(np.exp(rng_geo.uniform(np.log(N_POLY[0]), np.log(N_POLY[1] + 1))))
    points = rng_geo.uniform([0, 0], [grid[0], grid[1]], size=(n_poly, 2))
    size = float(max(grid))
    gy, gx = np.mgrid[0 : grid[0], 0 : grid[1]].astype(np.float32)
    warp = 0.35 * np.sqrt(grid[0] * grid[1] / n_poly)
    wy = warp * noise(rng_geo, grid, size / 8, octaves=2)
    wx = warp * noise(rng_geo, grid, size / 8, octaves=2)
    chart_vor = _voronoi(points, gy + wy, gx + wx)
    shift = 0.012 * size  # analyst's edge displacement, ~5 km at full size
    rough = 0.004 * size
    wy += shift * noise(rng_ice, grid, size / 6) + rough * noise(rng_ice, grid, size / 40, octaves=3)
    wx += shift * noise(rng_ice, grid, size / 6) + rough * noise(rng_ice, grid, size / 40, octaves=3)
    return _Grids(shape, step, n_poly, chart_vor, _voronoi(points, gy + wy, gx + wx))


def _egg_codes(r: np.random.Generator, grid: _Grids, spec: SceneSpec, targets: Targets, *, sea: np.ndarray,
               charted: np.ndarray) -> list[Polygon]:  # fmt: skip
    """Egg code of every chart polygon: which are water, then concentration, floe size and stage by rank.

    ``sea`` and ``charted`` are raw-grid masks (not land; not land and inside the chart's coverage).
    """
    n_poly, chart_vor = grid.n_poly, grid.chart
    cells = grid.cells
    size = float(max(cells))
    sea_small, charted = grid.coarse(sea), grid.coarse(charted)
    area = np.bincount(chart_vor[charted], minlength=n_poly).astype(float)
    # water by an ice-edge field: the template's open-water share goes to the polygons lowest on it
    ice_field = noise(r, cells, size / 3, octaves=2)
    ice_field += np.float32(r.uniform(0.5, 2.0)) * np.linspace(-1, 1, cells[0], dtype=np.float32)[:, None]
    iceness = np.bincount(chart_vor.ravel(), ice_field.ravel(), minlength=n_poly) / np.maximum(
        np.bincount(chart_vor.ravel(), minlength=n_poly), 1
    )
    del ice_field
    coast_dist = ndimage.distance_transform_edt(sea_small) if (~sea_small).any() else np.full(cells, np.inf)
    near_coast = ndimage.minimum(coast_dist, chart_vor + 1, index=np.arange(1, n_poly + 1)) < 0.04 * size
    order = np.argsort(iceness)
    cum = (np.cumsum(area[order]) - area[order] / 2) / max(area.sum(), 1)
    water = np.zeros(n_poly, bool)
    water[order[cum < targets.water_share]] = True
    # a real scene with a sliver of ice keeps it (95 of the 121 real training scenes that are >= 95 % water hold
    # some ice, 59 some with a stage): the smallest of the three iciest charted polygons, where rounding to whole
    # polygons left none
    charted_ids = order[area[order] > 0]
    if targets.water_share < 1 and charted_ids.size and not (area[~water] > 0).any():
        top = charted_ids[-3:]
        water[top[np.argmin(area[top])]] = False
    ranks = np.empty(n_poly)
    ranks[order] = np.linspace(0, 1, n_poly)
    ice_ids = np.flatnonzero(~water)
    tenths = icechart.assign_by_rank(r, ranks[ice_ids], area[ice_ids], targets.sic_probs)
    lut_tenths = dict(zip(ice_ids.tolist(), tenths.tolist(), strict=True))
    # floe size grows with the distance from open water (the ice edge), not with the local concentration
    water_px = np.isin(chart_vor, np.flatnonzero(water)) & charted
    if water_px.any():
        edge_dist = ndimage.distance_transform_edt(~water_px)
    else:  # the ice edge lies outside the scene, off one side
        a = r.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0 : cells[0], 0 : cells[1]]
        edge_dist = np.cos(a) * yy + np.sin(a) * xx
    per_poly = np.maximum(np.bincount(chart_vor.ravel(), minlength=n_poly), 1)  # a polygon may hold no cell
    mean_dist = np.bincount(chart_vor.ravel(), edge_dist.ravel(), minlength=n_poly) / per_poly
    dist_rank = np.argsort(np.argsort(mean_dist)) / max(1, n_poly - 1)
    floe_probs = np.r_[targets.floe_probs[:4], targets.floe_probs[4:].sum()]  # bergs: own polygons
    floes = icechart.assign_by_rank(r, dist_rank[ice_ids], area[ice_ids], floe_probs)
    lut_floe = dict(zip(ice_ids.tolist(), floes.tolist(), strict=True))
    # in the freezing season stages age with the distance from open water too: new and young ice forms at
    # the ice edge and in open leads, older ice lies further in (real CIS chart of 2020-11-02: Spearman 0.45 in
    # 400 km tiles, bench/chart_structure.py). In the melt season (no new ice) a polygon's stage is drawn alone.
    month = spec.start.month
    lut_stage: dict[int, int | None] = dict.fromkeys(ice_ids.tolist())
    if month in surface.FREEZING_MONTHS:
        stages = icechart.assign_by_rank(r, dist_rank[ice_ids], area[ice_ids], targets.sod_probs)
        lut_stage = dict(zip(ice_ids.tolist(), stages.tolist(), strict=True))
    cold = month in (11, 12, 1, 2, 3, 4, 5, 6)
    berg_p = 0.03 if spec.service == "dmi" and spec.real.counts["FLOE"][6] > 0 else 0.0
    # which ice polygons the analyst gave a stage and a form: the template's shares of its ice pixels, by area
    charted_ice = np.flatnonzero(~water & (area > 0))
    sod_ok = _labelled(r, charted_ice, area, targets.p_sod)
    floe_ok = _labelled(r, charted_ice, area, targets.p_floe)
    polys: list[Polygon] = []
    for p in range(n_poly):
        if water[p]:
            polys.append(icechart.water_polygon(spec.service))
            continue
        if r.random() < berg_p:
            polys.append(icechart.berg_polygon(r))
            continue
        sod_valid, floe_valid = bool(sod_ok[p]), bool(floe_ok[p])
        fast = bool(cold and near_coast[p] and sod_valid and not floe_valid and r.random() < 0.5)
        polys.append(icechart.ice_polygon(r, spec.service, lut_tenths[p], targets, floe=lut_floe[p],
                                          sod_valid=sod_valid, floe_valid=floe_valid, fast=fast,
                                          stage=lut_stage[p]))  # fmt: skip
    return polys


def _labelled(r: np.random.Generator, ids: np.ndarray, area: np.ndarray, share: float) -> np.ndarray:
    """Which polygons of ``ids`` carry a label: a random set holding ``share`` of their area.

    Polygons in random order, each labelled when the middle of its area falls below ``share`` of the total,
    so a scene's labelled share is its template's up to one polygon, unbiased in expectation. A template with
    any labelled pixel keeps one polygon, the one whose area is nearest that share. Drawing polygon by polygon
    instead (each with probability ``share``) and labelling the largest where none was drawn gave scenes of
    few polygons far more labels than their templates (check seeds: 73 % of ice pixels with a valid SOD
    against their templates' 63 %, 64 % now; 67 % in the whole real set).
    """
    ok = np.zeros(area.size, bool)
    if share <= 0 or not ids.size:
        return ok
    order = r.permutation(ids)
    frac = area[order] / area[order].sum()
    ok[order[np.cumsum(frac) - frac / 2 < share]] = True
    if not ok.any():
        ok[order[np.argmin(np.abs(frac - share))]] = True
    return ok


def _labels(polys: list[Polygon], pid: np.ndarray) -> dict[str, np.ndarray]:
    """The chart's classes per raw pixel from polygon ids ``pid`` (1..n for sea, n + 1 for land: no label)."""
    luts = {c: np.full(len(polys) + 2, schema.CHART_FILL, np.uint8) for c in schema.CHARTS}
    for p, poly in enumerate(polys):
        for c, v in zip(schema.CHARTS, poly.labels, strict=True):
            luts[c][p + 1] = v
    return {c: luts[c][pid] for c in schema.CHARTS}


def _distance_zones(r: np.random.Generator, land: np.ndarray, zoom: float) -> np.ndarray:
    """Distance to land as zones (spec §2), in the miniature's km so that zones do not depend on size; land 0."""
    rows, cols = shape = land.shape
    dstep = max(1, int(np.ceil(np.sqrt(rows * cols / 6.5e6))))
    land_d = land[::dstep, ::dstep]
    km_per_px = 1 / (PX_PER_KM * zoom)
    if land_d.any():
        dist_km = ndimage.distance_transform_edt(~land_d).astype(np.float32) * np.float32(dstep * km_per_px)
        dist_km = np.repeat(np.repeat(dist_km, dstep, axis=0), dstep, axis=1)[:rows, :cols]
    else:  # coast outside the scene: 120-800 km off one side
        d0 = float(r.uniform(120, 800))
        ramp = np.linspace(0, cols * km_per_px, cols, dtype=np.float32)[None, :]
        dist_km = np.broadcast_to(d0 + (ramp if r.random() < 0.5 else ramp[:, ::-1]), shape)
    zones = schema.distance_zone(np.maximum(dist_km, 0.02)).astype(np.float32)
    zones[land] = 0
    return zones


def _assemble(
    spec: SceneSpec,
    *,
    shape: tuple[int, int],
    zoom: float,
    theta_col: np.ndarray,
    flip: int,
    rng: np.random.Generator,
    hh: np.ndarray,
    hv: np.ndarray,
    zones: np.ndarray,
    polygon: np.ndarray,
    codes: list[str],
    swath: np.ndarray,
    coarse: dict[str, np.ndarray],
) -> xr.Dataset:
    """Put the generated arrays in the raw layout (spec §3, scenes_api raw layout)."""
    rows, cols = shape
    region = REGIONS[spec.service][spec.region]
    n = schema.TIEPOINT_GRID
    t_lines = np.linspace(0, rows - 1, n)
    t_samples = np.linspace(0, cols - 1, n)
    tl, ts = np.meshgrid(t_lines, t_samples, indexing="ij")  # line-major order
    # a rotated ~400 km swath rectangle inside the region box (miniatures keep the real extent)
    heading = np.deg2rad(rng.uniform(-30, 30) + (180 if rng.random() < 0.5 else 0))
    km_per_px = 1 / (PX_PER_KM * zoom)
    along = (tl - rows / 2) * km_per_px
    across = (ts - cols / 2) * km_per_px * (-1 if flip else 1)
    dlat = (along * np.cos(heading) - across * np.sin(heading)) / 111.2
    east = along * np.sin(heading) + across * np.cos(heading)

    def inside(lo: float, hi: float, off: np.ndarray) -> float:
        a, b = lo - off.min(), hi - off.max()  # centres keeping the whole swath in [lo, hi]
        return float(rng.uniform(a, b)) if a < b else (lo + hi) / 2

    lat = inside(*region.lat, dlat) + dlat
    dlon = east / (111.2 * np.cos(np.deg2rad(lat)))
    lon = inside(*region.lon, dlon) + dlon
    theta_tp = np.interp(ts, np.arange(cols), theta_col.astype(np.float64))
    tie = {
        "sar_grid_line": tl,
        "sar_grid_sample": ts,
        "sar_grid_latitude": lat,
        "sar_grid_longitude": lon,
        "sar_grid_incidenceangle": theta_tp,
        "sar_grid_height": np.zeros_like(tl),
    }
    full = schema.FULL_DIMS
    cdims = schema.COARSE_DIMS
    data_vars: dict[str, tuple] = {
        schema.SAR_VARIABLES[0]: (full, hh),
        schema.SAR_VARIABLES[1]: (full, hv),
        schema.DISTANCE_VARIABLE: (full, zones),
        schema.POLYGON_ICECHART: (full, polygon),
        "swath_segmentation": (full, swath),
        schema.POLYGON_CODES: ((schema.RAW_CODES_DIM,), np.array(codes, dtype=str)),
    }
    for name in schema.COARSE_VARIABLES:
        data_vars[name] = (cdims, np.asarray(coarse[name], np.float64))
    for name in schema.RAW_TIEPOINTS:
        data_vars[name] = ((schema.RAW_TIEPOINT_DIM,), np.asarray(tie[name], np.float64).ravel())
    attrs = {
        "ice_service": spec.service,
        "flip": flip,
        "pixel_spacing": schema.RAW_PIXEL_SPACING,
        "scene_id": spec.raw_name.split("_icechart_")[0],
        "source": "autoice.synth (synthetic)",
    }
    return xr.Dataset(data_vars, attrs=attrs)


# --------------------------------------------------------------------------- writing


def write_raw(spec: SceneSpec, seed: int, out_dir: str | os.PathLike[str]) -> Path:
    """Generate one scene and write it as ``out_dir/<raw name>`` (netCDF-4, atomic).

    Args:
        spec: the scene.
        seed: dataset seed.
        out_dir: folder of the raw files (created if missing).

    Returns:
        The written path.
    """
    from autoice import scenes

    ds, _ = generate_raw(spec, seed)
    path = Path(out_dir) / spec.raw_name
    scenes.write_netcdf(ds, path)
    return path


def _make_scene(spec: SceneSpec, seed: int, out_dir: str, split: str, overwrite: bool) -> tuple[str, list[Path], str]:
    """Worker job: raw -> RTT (train) or raw -> RTT -> test + reference.

    Returns (split, paths, status) with status ``made``, ``kept`` (every output existed intact) or
    ``replaced`` (an existing output was damaged, so the scene was made again).
    """
    from autoice import prepare, scenes
    from autoice.scenes import SceneKind

    root = Path(out_dir)
    raw_dir, split_dir = root / "raw", root / split
    raw_path = raw_dir / spec.raw_name
    rtt_path = split_dir / spec.rtt_name
    ref_path = split_dir / schema.parse_raw_name(spec.raw_name).reference_name  # type: ignore[union-attr]
    kinds = {raw_path: SceneKind.RAW, rtt_path: SceneKind.TRAIN}
    if split == "test":
        kinds.update({rtt_path: SceneKind.TEST, ref_path: SceneKind.REFERENCE})
    wanted = list(kinds)
    damaged = [] if overwrite else [p for p in wanted if p.exists() and not scenes.intact(p, kinds[p])]
    if not overwrite and not damaged and all(p.exists() for p in wanted):
        return split, wanted, "kept"
    status = "replaced" if damaged else "made"
    write_raw(spec, seed, raw_dir)
    result = prepare.prepare_file(raw_path, split_dir, overwrite=True)
    if split == "test":
        test_path, reference = scenes.split_reference(result.output)
        return split, [raw_path, test_path, reference], status
    return split, [raw_path, result.output], status


def synthesize(
    out_dir: str | os.PathLike[str],
    *,
    n_train: int,
    n_test: int,
    height: int,
    width: int,
    seed: int,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: str | None = None,
) -> SynthResult:
    """Write a synthetic dataset: ``raw/`` (40 m), ``train/`` (RTT with charts), ``test/`` (+ references).

    Training scenes are indices ``0 .. n_train - 1``, test scenes follow; scene *i* depends only on
    (seed, i), so ``workers`` never changes the results. Scenes whose outputs exist are kept unless
    ``overwrite`` or one of them is damaged (then the scene is made again). A scene that fails does not
    stop the others: every good scene is written, then :class:`~autoice.errors.ScenesFailed` lists
    the bad ones (its ``partial`` is the SynthResult of the good ones).

    Args:
        out_dir: dataset root.
        n_train: training scenes.
        n_test: test scenes (written without charts, plus ``_prep_reference.nc``).
        height: RTT lines per scene (raw has twice as many).
        width: RTT samples per scene.
        seed: dataset seed.
        workers: parallel processes.
        overwrite: regenerate scenes whose files exist.
        progress: show a tqdm bar on stderr.
        scheduler: a Dask scheduler's address: make the scenes on that cluster (``out_dir`` on
            storage every worker sees).

    Returns:
        A :class:`SynthResult` with every file path.
    """
    from autoice.atomic import ensure_folder
    from autoice.batch import run_each

    if n_train < 0 or n_test < 0:
        raise AutoiceError(f"{out_dir}: scene counts must not be negative (train {n_train}, test {n_test})")
    if workers < 1:
        raise AutoiceError(f"{out_dir}: workers must be >= 1, got {workers}")
    specs = scene_specs(n_train + n_test, height=height, width=width, seed=seed)
    jobs = [(spec, seed, str(out_dir), "train" if spec.index < n_train else "test", overwrite) for spec in specs]
    labels = [str(Path(out_dir) / "raw" / spec.raw_name) for spec in specs]
    for folder in ["raw", *(["train"] if n_train else []), *(["test"] if n_test else [])]:
        ensure_folder(Path(out_dir) / folder)  # a folder problem is one error, not one per scene
    batch = run_each(_make_scene, jobs, labels, workers=workers, desc="synth", progress=progress, scheduler=scheduler,
                     outputs=[Path(out_dir) / f for f in ("raw", "train", "test")])  # fmt: skip
    out = SynthResult()
    for split, paths, status in batch.done():
        out.raw.append(paths[0])
        out.skipped += int(status == "kept")
        out.replaced += int(status == "replaced")
        if split == "train":
            out.train.append(paths[1])
        else:
            out.test.append(paths[1])
            out.reference.append(paths[2])
    batch.check(partial=out)
    return out
