"""Input checks shared by the simulators: each failure names the parameter, the value and what is allowed."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["as_real_array", "check_finite", "check_bounds", "check_memory", "check_time_grid", "physical_memory"]


def physical_memory() -> int:
    """This machine's physical memory in bytes (0 where the platform does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def _bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


def check_memory(needed: float, what: str, fix: str) -> None:
    """Refuse, in one line giving the size, work whose arrays alone would not fit in this machine's memory
    (rather than meet a NumPy or TensorFlow allocation error, or the kernel's OOM killer, after minutes)."""
    total = physical_memory()
    if total and needed > total:
        raise ValueError(f"{what} needs about {_bytes(needed)} of memory, more than this machine's "
                         f"{_bytes(total)}; {fix}")


def _first_bad(array: np.ndarray, bad: np.ndarray) -> str:
    """Render the first offending element as ``name[i, j] = value`` suffix and value."""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = float(array[index] if array.ndim else array[()])
    where = f"[{', '.join(map(str, index))}]" if array.ndim else ""
    return f"{where} = {value!r}"


def as_real_array(name: str, value: ArrayLike, *, max_ndim: int | None = None) -> np.ndarray:
    """Convert ``value`` to a float64 array, rejecting non-numeric input and too many dimensions."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number or an array of real numbers, got {value!r}") from None
    if max_ndim is not None and array.ndim > max_ndim:
        raise ValueError(f"{name} must have at most {max_ndim} dimension(s), got shape {array.shape}")
    return array


def check_finite(name: str, array: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name}{_first_bad(array, bad)} is not finite; give finite numbers")
    return array


def check_bounds(
    name: str, array: np.ndarray, *, low: float | None = None, strict: bool = False, high: float | None = None
) -> np.ndarray:
    """Check ``low <= array`` (``<`` if ``strict``) and ``array <= high``, after checking it is finite."""
    check_finite(name, array)
    if low is not None:
        bad = array <= low if strict else array < low
        if bad.any():
            rel = ">" if strict else ">="
            raise ValueError(f"{name}{_first_bad(array, bad)} is out of range; it must be {rel} {low:g}")
    if high is not None:
        bad = array > high
        if bad.any():
            raise ValueError(f"{name}{_first_bad(array, bad)} is out of range; it must be <= {high:g}")
    return array


def check_time_grid(time: ArrayLike) -> np.ndarray:
    """A 1-D, finite, strictly increasing array of at least one time."""
    t = as_real_array("time", time, max_ndim=1)
    t = np.atleast_1d(t)
    check_finite("time", t)
    if t.size == 0:
        raise ValueError("time is empty; give at least one time point")
    steps = np.diff(t)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise ValueError(
            f"time must be strictly increasing, but time[{i + 1}] = {float(t[i + 1])!r} <= time[{i}] = {float(t[i])!r}"
        )
    return t
