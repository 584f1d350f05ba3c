"""Seeded synthetic AI4Arctic scenes in the exact raw format, prepared by the real prepare path.

The real dataset cannot be downloaded everywhere, so tests, demos and benchmarks run on scenes from
here; they are the project's yardstick, so they must reward what the real data rewards. Parameters come
from ``shared/spec/physics.md`` (cited ``P§x``), scene composition from the real training set.

- :mod:`~autoice.synth.specs`: which scenes (service, region, month, composition of a real template);
- :mod:`~autoice.synth.icechart`: the analyst's chart, SIGRID-3 egg codes per polygon;
- :mod:`~autoice.synth.surface`: the true ice field under it (displaced edges, leads, floes, ridges);
- :mod:`~autoice.synth.weather`: true weather and ERA5; :mod:`~autoice.synth.radiometer`: AMSR2;
  :mod:`~autoice.synth.sar`: Sentinel-1 HH/HV;
- :mod:`~autoice.synth.scene`: one scene to a raw file, a whole set through the real ``prepare``.

Example:
    >>> from autoice.synth import synthesize
    >>> result = synthesize("data/synth", n_train=4, n_test=2, height=600, width=640, seed=0)  # doctest: +SKIP
"""

from autoice.synth.fields import block_counts
from autoice.synth.scene import FULL_EXTENT_PX, Scene, SynthResult, generate_raw, generate_scene, synthesize, write_raw
from autoice.synth.specs import REGIONS, Region, SceneSpec, scene_specs

__all__ = [
    "FULL_EXTENT_PX",
    "REGIONS",
    "Region",
    "Scene",
    "SceneSpec",
    "SynthResult",
    "block_counts",
    "generate_raw",
    "generate_scene",
    "scene_specs",
    "synthesize",
    "write_raw",
]
