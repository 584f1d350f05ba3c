"""The analyst's ice chart: SIGRID-3 egg codes per polygon, matching a real scene's composition.

A real chart is drawn by an analyst: polygons of roughly uniform ice, each with a total
concentration (CT) and up to three partial concentrations with their stage and form. Here the codes
are chosen per polygon so that the scene's chart histograms follow its real template: the share of
open water, the SIC class mix, how much of the ice is dominated by one stage (SOD valid) or one form
(FLOE valid), and which classes. The true ice field (:mod:`autoice.synth.surface`) is then made from
these codes *with the analyst's errors*, so the chart is an average, not a copy, of what the sensors see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from autoice import schema
from autoice.realstats import RealScene

# Surface classes of a pixel (internal): 0 water, 1..5 = SOD classes, 6 berg (glacier ice), 7 land.
WATER, NEW, YOUNG, THIN_FYI, THICK_FYI, OLD, BERG, LAND = range(8)
N_SURF = 8

#: Stage codes per SOD class by service (SIGRID-3, spec §4; P§3.1).
STAGE_CODES: dict[str, dict[int, tuple[int, ...]]] = {
    "cis": {NEW: (81,), YOUNG: (84, 85, 83), THIN_FYI: (87,), THICK_FYI: (91, 93, 86), OLD: (97, 96)},
    "dmi": {NEW: (81, 82), YOUNG: (83, 84, 85), THIN_FYI: (87, 88, 89), THICK_FYI: (86, 91, 93), OLD: (95, 96, 97)},
}
#: Form code per FLOE class 1..5 (cake, small, medium, big, vast; P§3.2). Bergs are separate polygons.
FORM_CODES: dict[int, tuple[int, ...]] = {1: (2,), 2: (3,), 3: (4,), 4: (5,), 5: (6, 6, 7)}
#: FLOE class an ice type usually has when the template says nothing (new ice small, old ice vast).
_TYPICAL_FLOE = {NEW: 2, YOUNG: 3, THIN_FYI: 4, THICK_FYI: 5, OLD: 5, BERG: 6}


@dataclass
class Polygon:
    """One chart polygon: its SIGRID codes, the labels they mean, and what the true ice holds."""

    poly_type: str
    ct: int = schema.NOT_FILLED
    partials: list[tuple[int, int, int]] = field(default_factory=list)  #: (C code, S code, F code), A first
    single: bool = True  #: CA left unfilled (single ice type)
    labels: tuple[int, int, int] = (schema.CHART_FILL,) * 3  #: SIC, SOD, FLOE this code means
    type_classes: tuple[int, ...] = ()  #: surface class of each partial
    type_shares: tuple[float, ...] = ()  #: share of the ice of each partial
    floe_class: int = 5  #: FLOE class that sets the floe texture (form of the largest partial)
    fast: bool = False

    @property
    def tenths(self) -> int:
        """Total concentration in tenths (0 for water, 10 for 9+/10 and 10/10)."""
        return 0 if self.poly_type != "I" else schema.SIC_CODES.get(self.ct, 0)

    def code_row(self, pid: int) -> str:
        """The ``polygon_codes`` row: id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE."""
        nf = schema.NOT_FILLED
        cols = [nf] * 9
        for k, (c, s, f) in enumerate(self.partials):
            cols[3 * k : 3 * k + 3] = [c, s, f]
        if self.single and self.partials:
            cols[0] = nf  # single type: CA not filled (rule 1 of spec §4 fills it from CT)
        values = [pid, self.ct, *cols, nf, nf, nf]
        return ";".join(str(v) for v in values) + ";" + self.poly_type


def intended_labels(ct: int, partials: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """SIC/SOD/FLOE class that an ice polygon's codes mean (spec §4), reasoned here independently.

    Codes are chosen so that this plain reading is the official one: no range codes, no unknowns in
    multi-type polygons (level ice or pancake mask FLOE there), never three partials of one class.
    """
    fill = schema.CHART_FILL
    sic = schema.SIC_CODES[ct]
    if sic == 0:
        return 0, 0, 0
    thr = schema.THRESHOLDS["current"]
    tenths = [schema.SIC_CODES[c] for c, _, _ in partials]
    sod_cls = [schema.SOD_CODES.get(s, fill) for _, s, _ in partials]
    floe_cls = [schema.FLOE_CODES.get(f, fill) for _, _, f in partials]

    def dominant(classes: list[int], threshold: float) -> int:
        merged: dict[int, int] = {}
        for c, t in zip(classes, tenths, strict=True):
            merged[c] = merged.get(c, 0) + t
        best = max(merged, key=lambda c: merged[c])  # shares never tie at >= 65 %
        return best if merged[best] >= threshold * sic and best != fill else fill

    sod = dominant(sod_cls, thr["SOD"])
    floe = fill if fill in floe_cls else dominant(floe_cls, thr["FLOE"])
    return sic, sod, floe


@dataclass(frozen=True)
class Targets:
    """What the chart of one scene should hold, read from its real template."""

    water_share: float  #: open water share of the charted sea
    sic_probs: np.ndarray  #: share of ice pixels per SIC class 1..10
    p_sod: float  #: share of ice pixels with a valid SOD (one stage reaches 65 %)
    sod_probs: np.ndarray  #: share per SOD class 1..5 among those
    p_floe: float  #: share of ice pixels with a valid FLOE
    floe_probs: np.ndarray  #: share per FLOE class 1..6 among those
    masked_share: float  #: share of the scene that is 255 in SIC (land, no data, no chart)

    @classmethod
    def from_real(cls, real: RealScene, fallback_stages: np.ndarray) -> Targets:
        """Targets of a real scene; classes it has none of fall back to the region's climatology."""
        sic = real.counts["SIC"].astype(float)
        valid = sic.sum()
        ice = sic[1:].sum()
        water = float(sic[0] / valid) if valid else 0.5
        sic_probs = sic[1:] / ice if ice else np.r_[np.zeros(9), 1.0]
        sod = real.counts["SOD"][1:].astype(float)
        floe = real.counts["FLOE"][1:].astype(float)
        p_sod = float(np.clip(sod.sum() / ice, 0, 1)) if ice else 0.7
        p_floe = float(np.clip(floe.sum() / ice, 0, 1)) if ice else 0.7
        sod_probs = sod / sod.sum() if sod.sum() else np.asarray(fallback_stages, float) / np.sum(fallback_stages)
        if floe.sum():
            floe_probs = floe / floe.sum()
        else:  # FLOE classes that go with the stages
            floe_probs = np.zeros(6)
            for k, w in enumerate(sod_probs):
                floe_probs[_TYPICAL_FLOE[k + 1] - 1] += w
        return cls(water, sic_probs, p_sod, sod_probs, p_floe, floe_probs, real.masked["SIC"] / max(1, real.total))


def _split(rng: np.random.Generator, total: int, n: int, *, cap: int | None = None, floor: int = 1) -> list[int]:
    """``total`` tenths in ``n`` parts >= ``floor``, largest first, the largest <= ``cap`` when given."""
    for _ in range(50):
        cuts = np.sort(rng.choice(np.arange(1, total), size=n - 1, replace=False)) if n > 1 else np.array([], int)
        parts = sorted((int(x) for x in np.diff(np.concatenate([[0], cuts, [total]]))), reverse=True)
        if min(parts) >= floor and (cap is None or parts[0] <= cap):
            return parts
    base = [total // n + (1 if k < total % n else 0) for k in range(n)]
    return sorted(base, reverse=True)


def _form(rng: np.random.Generator, floe_cls: int, service: str) -> int:
    if service == "cis" and floe_cls == 1:  # CIS charts have no FLOE cake (spec §9)
        floe_cls = 2
    return int(rng.choice(FORM_CODES[min(floe_cls, 5)]))


def ice_polygon(rng: np.random.Generator, service: str, tenths: int, targets: Targets, *, floe: int,
                sod_valid: bool, floe_valid: bool, fast: bool = False, stage: int | None = None
                ) -> Polygon:  # fmt: skip
    """Egg code of one ice polygon of ``tenths`` (1..10) whose labels follow the template's classes.

    ``floe``: the FLOE class (1..5) of its dominant form (:func:`assign_by_rank` places floe sizes);
    ``sod_valid``: one stage holds >= 65 % of the ice (else two or three stages share it);
    ``floe_valid``: likewise for the form; ``stage``: the SOD class (1..5) of its dominant stage
    (:func:`assign_by_rank` places stages), drawn from the template's mix when not given. The decoded labels
    always come from :func:`intended_labels`.
    """
    stages = STAGE_CODES[service]
    ct = 91 if tenths == 10 else tenths * 10
    sod = int(rng.choice(5, p=targets.sod_probs)) + 1 if stage is None else int(stage)
    if fast:  # land-fast ice: 10/10 (code 92), form 8 -> FLOE masked
        poly = Polygon("I", ct=92, partials=[(92, int(rng.choice(stages[sod])), 8)], fast=True)
        poly.type_classes, poly.type_shares, poly.floe_class = (sod,), (1.0,), 5
        poly.labels = intended_labels(92, poly.partials)
        return poly
    need = math.ceil(0.65 * tenths)
    if tenths == 1 or (sod_valid and (need >= tenths or (floe_valid and rng.random() < 0.5))):
        s_code = int(rng.choice(stages[sod])) if sod_valid else schema.UNKNOWN
        if floe_valid:
            f_code = _form(rng, floe, service)
        else:  # pancake for new ice, otherwise level ice or unknown (real CIS habit)
            f_code = 22 if sod == NEW else int(rng.choice([21, schema.UNKNOWN]))
        poly = Polygon("I", ct=ct, partials=[(ct, s_code, f_code)], single=True)
        poly.type_classes, poly.type_shares = (sod,), (1.0,)
        poly.floe_class = floe if floe_valid else _TYPICAL_FLOE[sod]
        poly.labels = intended_labels(ct, [(ct, s_code, f_code)])
        return poly
    # several partials: shares in tenths, thickest type first (SIGRID-3 order)
    n = 3 if tenths >= 3 and rng.random() < 0.35 else 2
    if not sod_valid and tenths == 3:
        n = 3  # 2/3 would already reach 65 %
    if sod_valid:
        first = int(rng.integers(need, tenths))
        rest = _split(rng, tenths - first, min(n - 1, tenths - first))
        shares = [first, *rest]
    else:
        shares = _split(rng, tenths, n, cap=need - 1)
    n = len(shares)
    # stage classes: the dominant one first when valid, otherwise distinct classes
    others = [c for c in range(1, 6) if c != sod]
    w = np.array([targets.sod_probs[c - 1] + 0.05 for c in others])
    picks = list(rng.choice(others, size=min(n - 1, len(others)), replace=False, p=w / w.sum()))
    classes = [sod, *[int(c) for c in picks]]
    # forms: the dominant form on enough partials to pass 65 % when FLOE is valid, distinct otherwise
    if floe_valid:
        fcls, acc = [], 0
        for t in shares:
            fcls.append(floe if acc < need else int(rng.choice([c for c in (2, 3, 4, 5) if c != floe])))
            acc += t
    else:
        fcls = [int(c) for c in rng.choice((2, 3, 4, 5), size=n, replace=False)]
    forms = [_form(rng, f, service) for f in fcls]
    if not floe_valid:  # level ice (21) or pancake (22) on the largest partial masks FLOE (spec §4 rule 5)
        forms[0] = 22 if classes[0] == NEW else 21
    partials = [(t * 10, int(rng.choice(stages[c])), f) for t, c, f in zip(shares, classes, forms, strict=True)]
    order = np.argsort([-c for c in classes], kind="stable")  # thickest first
    partials = [partials[k] for k in order]
    shares = [shares[k] for k in order]
    classes = [classes[k] for k in order]
    poly = Polygon("I", ct=ct, partials=partials, single=False)
    poly.type_classes = tuple(classes)
    poly.type_shares = tuple(np.array(shares, float) / sum(shares))
    big = int(np.argmax(shares))
    fc = schema.FLOE_CODES.get(partials[big][2], schema.CHART_FILL)
    poly.floe_class = fc if fc != schema.CHART_FILL else _TYPICAL_FLOE[classes[big]]
    poly.labels = intended_labels(ct, partials)
    return poly


def berg_polygon(rng: np.random.Generator) -> Polygon:
    """DMI iceberg polygon: 1/10 glacier ice as icebergs -> SIC 1, SOD masked (98), FLOE bergs."""
    poly = Polygon("I", ct=10, partials=[(10, 98, 10)], single=True)
    poly.labels = intended_labels(10, poly.partials)
    poly.type_classes, poly.type_shares, poly.floe_class = (BERG,), (1.0,), 6
    return poly


def water_polygon(service: str) -> Polygon:
    """Open water: CIS writes CT 0, DMI leaves it unfilled; both mean SIC/SOD/FLOE 0."""
    poly = Polygon("W", ct=0 if service == "cis" else schema.NOT_FILLED)
    poly.labels = (0, 0, 0)
    return poly


def assign_by_rank(rng: np.random.Generator, ranks: np.ndarray, areas: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Classes 1..len(probs) for ice polygons, area-matched to the template's mix ``probs``.

    Low classes go to low ``ranks`` with some disorder: lower concentrations towards the ice edge (SIC),
    and smaller floes towards it too (FLOE: waves break the ice up in the marginal ice zone, floe size
    grows into the pack; P§3.2, Stern et al. 2018).
    """
    if ranks.size == 0:
        return np.zeros(0, int)
    key = ranks + rng.normal(0, 0.15, size=ranks.size)
    order = np.argsort(key)
    mid = (np.cumsum(areas[order]) - areas[order] / 2) / max(areas.sum(), 1e-9)
    cdf = np.cumsum(probs) / probs.sum()
    out = np.empty(ranks.size, int)
    out[order] = np.minimum(np.searchsorted(cdf, mid, side="right") + 1, len(probs))
    return out
