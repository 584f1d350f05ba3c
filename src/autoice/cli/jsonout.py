"""Standard JSON for every ``--json`` output: NaN and infinities become null (JSON has neither)."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (R² of a one-pixel chart is NaN, say)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)``; refuses anything that would still be non-standard."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
