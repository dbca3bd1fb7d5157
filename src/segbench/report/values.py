"""Values as the report shows them: finite floats or nothing, compact numbers, plain JSON types.

Every formatter shows a missing, NaN or infinite value as :data:`DASH` ("not measured").
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

DASH = "–"  # shown for "not measured"


def num(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None (None, NaN, inf, bools, non-numbers)."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


def jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types.

    Numpy scalars and arrays become Python numbers and lists, NaN and inf become None, dict keys become
    str, and paths or any other object become their ``str``.
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return str(obj)


def fmt_pct(value: Any) -> str:
    """A fraction in [0, 1] as a percentage with one decimal (``0.6123`` -> ``"61.2"``)."""
    v = num(value)
    return DASH if v is None else f"{v * 100:.1f}"


def fmt(value: Any) -> str:
    """Compact number: 3 significant digits for small values, no decimals from 100 up; str unchanged."""
    if isinstance(value, str):
        return value
    x = num(value)
    if x is None:
        return DASH
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01 or a == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def fmt_value(value: Any) -> str:
    """A settings or environment value as one line of text (dicts and lists as JSON)."""
    if value is None:
        return DASH
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if math.isfinite(float(value)) else DASH
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return str(value).replace("\n", " ")


def fmt_interval(pair) -> str:
    """``"[70.02, 74.40]"``: a ``[low, high]`` fraction interval in percent, or the dash."""
    if not pair or num(pair[0]) is None or num(pair[1]) is None:
        return DASH
    return f"[{fmt_pct(pair[0])}, {fmt_pct(pair[1])}]"
