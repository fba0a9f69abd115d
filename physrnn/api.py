"""Front-door helpers of ``import physrnn as pr`` that are not a class or function of another module."""

from __future__ import annotations

from typing import Any

from simulators.ensemble import EnsembleConfig, generate
from simulators.trajectory_file import Trajectories

__all__ = ["simulate"]


def simulate(*, system: str, n_traj: int, dt: float, seed: int, t_end: float | str | None = None,
             n_steps: int | None = None, method: str = "exact", **params: Any) -> Trajectories:
    """A seeded ensemble of a registered system, solved in memory.

    Every keyword beyond the ensemble's own (``system``, ``n_traj``, ``dt``, ``t_end`` or ``n_steps``,
    ``seed``, ``method``) is a parameter spec of the system, as in a config's ``[params]`` table: a value, or
    ``{"uniform": [lo, hi]}`` and the like (see :mod:`simulators.params`).

    >>> train = simulate(system="oscillator", n_traj=24, dt=0.05, t_end=20, seed=1, damping=0.2,
    ...                  drive_amplitude=0.5, drive_frequency=1.3)
    """
    config = {"system": system, "n_traj": n_traj, "dt": dt, "seed": seed, "method": method, "params": params}
    if t_end is not None:
        config["t_end"] = float(t_end) if not isinstance(t_end, str) else t_end
    if n_steps is not None:
        config["n_steps"] = n_steps
    return generate(EnsembleConfig.from_dict(config))
