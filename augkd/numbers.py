"""Number checks shared by the parsers of specs and configs."""

from __future__ import annotations

import math


def is_finite(value: object) -> bool:
    """Whether ``value`` is an int or float (not a bool) that is finite as a float.

    ``math.isfinite`` raises OverflowError for ints beyond the float range (10**400); here
    they are simply not finite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
