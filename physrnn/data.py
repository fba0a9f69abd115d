r"""From trajectory files to the learning problem.

A model learns the Euler-style update of the *observed* state :math:`o`,

.. math::  o_{i+1} = o_i + \Delta t\, g_\theta(u_{\le i}), \qquad u_i = (o_i,\ d_i,\ p),

where :math:`d_i` is the known drive at :math:`t_i` and :math:`p` the physical parameters (for
parameter-aware models). The target of :math:`g_\theta` is the exact increment
:math:`(o_{i+1} - o_i)/\Delta t`; an input never contains :math:`o_{i+1}`.

Observation modes, drive features and the parameters a parameter-aware model may see are each system's own
(``OBSERVATIONS``, ``DRIVE_FEATURES`` and ``MODEL_PARAMETERS`` of :class:`simulators.system.PhysicalSystem`):
``"full"`` is the whole state everywhere; the oscillator adds ``"position"`` (x alone, so a model must carry the
velocity in its memory) and the drive features ``"phase"`` ((cos, sin) of each term's phase
:math:`\Omega_k t + \varphi_k`, from which the exact one-step map is affine) and ``"force"`` (F(t) alone).

Splits are by whole trajectory, from a seed, or by parameter value; the scaler is fitted on the training
part only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from simulators.system import get_system, system_names
from simulators.trajectory_file import Trajectories

__all__ = ["FeatureSpec", "Scaler", "StepData", "angle_columns", "angle_features", "build_step_data", "split_by_parameter",
           "split_by_trajectory"]

#: The system name of data built from plain arrays (no equations known: the physics baselines do not apply).
ARRAYS = "arrays"


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """What a model observes and is given as known input.

    Parameters
    ----------
    system : str
        A registered system (or ``"arrays"`` for data given as arrays).
    observation : str
        One of the system's observation modes (``"full"``: the whole state).
    drive : str, optional
        Known-drive features, one of the system's ``DRIVE_FEATURES`` (default: its first; ``"none"`` wherever
        there is no drive).
    parameters : tuple of str
        Physical parameters given to the model at every step (empty: not parameter-aware), from the system's
        ``MODEL_PARAMETERS``.
    """

    system: str
    observation: str = "full"
    drive: str | None = None
    parameters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters))
        if self.system == ARRAYS:
            object.__setattr__(self, "drive", self.drive or "none")
            if (self.observation, self.drive, self.parameters) != ("full", "none", ()):
                raise ValueError("data given as arrays are observed in full, with their known inputs as given")
            return
        if self.system not in system_names():
            raise ValueError(f"unknown system {self.system!r}; choose one of {', '.join(system_names())}")
        cls = get_system(self.system)
        if self.observation not in cls.OBSERVATIONS:
            raise ValueError(f"unknown observation {self.observation!r} for the {self.system} system; choose one of "
                             f"{', '.join(cls.OBSERVATIONS)}")
        if self.drive is None:
            object.__setattr__(self, "drive", cls.DRIVE_FEATURES[0])
        if self.drive not in cls.DRIVE_FEATURES:
            raise ValueError(f"unknown drive features {self.drive!r} for the {self.system} system; choose one of "
                             f"{', '.join(cls.DRIVE_FEATURES)}")
        if self.parameters and not cls.MODEL_PARAMETERS:
            raise ValueError(f"{self.system} models take no parameters; the system's are learned from the data")
        unknown = set(self.parameters) - set(cls.MODEL_PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameter feature(s) {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(cls.MODEL_PARAMETERS)}")

    def to_config(self) -> dict:
        return {"system": self.system, "observation": self.observation, "drive": self.drive,
                "parameters": list(self.parameters)}


@dataclass(frozen=True, eq=False)
class StepData:
    """The learning problem for an ensemble, before windowing.

    Attributes
    ----------
    observed : ndarray of shape (n_traj, n_steps, n_obs)
        Observed states o_i.
    known : ndarray of shape (n_traj, n_steps, n_known)
        Known inputs at each step: drive features, then parameters (constant in time).
    time : ndarray of shape (n_steps,)
    dt : float
    spec : FeatureSpec
    trajectories : ndarray of int
        Indices of these trajectories in the source file.
    system : PhysicalSystem or None
        The true system, one parameter set per trajectory (for the physics baselines and the metrics); None
        for data given as arrays.
    states : ndarray of shape (n_traj, n_steps, n_state)
        The full true states (equal to ``observed`` under full observation).
    """

    observed: np.ndarray
    known: np.ndarray
    time: np.ndarray
    dt: float
    spec: FeatureSpec
    trajectories: np.ndarray
    system: Any
    states: np.ndarray
    state_names: tuple[str, ...] = field(default=())

    @property
    def n_traj(self) -> int:
        return self.observed.shape[0]

    @property
    def n_obs(self) -> int:
        return self.observed.shape[2]

    @property
    def n_known(self) -> int:
        return self.known.shape[2]

    @property
    def inputs(self) -> np.ndarray:
        """u_i = (o_i, known_i), ndarray of shape (n_traj, n_steps, n_obs + n_known)."""
        return np.concatenate([self.observed, self.known], axis=-1)

    @property
    def targets(self) -> np.ndarray:
        """(o_{i+1} − o_i)/Δt, ndarray of shape (n_traj, n_steps − 1, n_obs)."""
        return np.diff(self.observed, axis=1) / self.dt

    def take(self, index: np.ndarray) -> StepData:
        """The trajectories ``index`` (an integer array or a slice)."""
        index = np.asarray(index) if not isinstance(index, slice) else index
        system = None if self.system is None else self.system.take(index)
        return StepData(self.observed[index], self.known[index], self.time, self.dt, self.spec,
                        self.trajectories[index], system, self.states[index], self.state_names)

    def steps(self, start: int, stop: int | None = None) -> StepData:
        """The steps ``start:stop`` of every trajectory (their times as they were)."""
        index = slice(start, stop)
        return StepData(self.observed[:, index], self.known[:, index], self.time[index], self.dt, self.spec,
                        self.trajectories, self.system, self.states[:, index], self.state_names)

    @classmethod
    def from_trajectories(cls, trajectories: Trajectories, *, observation: str = "full", drive: str | None = None,
                          parameters: Sequence[str] = ()) -> StepData:
        """The learning problem of an ensemble (simulated, or read with :func:`simulators.read_trajectories`).

        ``drive`` defaults to the system's first drive-feature mode (the drive's phase for the oscillator).
        """
        spec = FeatureSpec(system=trajectories.system, observation=observation, drive=drive,
                           parameters=tuple(parameters))
        return build_step_data(trajectories, spec)

    @classmethod
    def from_arrays(cls, states, *, dt: float, known=None, state_names: Sequence[str] | None = None) -> StepData:
        """Data from plain arrays: states ``(n_traj, n_steps, n_state)`` on a uniform grid of step ``dt``, and
        optionally known inputs ``(n_traj, n_steps, n_known)`` (drive features, parameters) the model is given.

        No equations come with them, so the physics baselines (Euler, RK4) do not apply; learned models and the
        linear map do, and their rollouts are scored against these states.
        """
        states = np.asarray(states, dtype=np.float64)
        if states.ndim == 2:
            states = states[None]
        if states.ndim != 3 or states.shape[1] < 2:
            raise ValueError(f"states must have shape (n_traj, n_steps >= 2, n_state), got {np.shape(states)}")
        if not np.isfinite(states).all():
            raise ValueError("states hold non-finite values; give finite numbers")
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        n, m, _ = states.shape
        known = np.zeros((n, m, 0)) if known is None else np.asarray(known, dtype=np.float64)
        if known.ndim == 2:
            known = known[None]
        if known.shape[:2] != (n, m) or known.ndim != 3:
            raise ValueError(f"known must have shape ({n}, {m}, n_known) to match the states, got {known.shape}")
        names = tuple(state_names) if state_names is not None else tuple(f"s{i}" for i in range(states.shape[2]))
        if len(names) != states.shape[2]:
            raise ValueError(f"state_names has {len(names)} names for {states.shape[2]} components")
        spec = FeatureSpec(system=ARRAYS, observation="full", drive="none")
        return cls(np.ascontiguousarray(states), np.ascontiguousarray(known), float(dt) * np.arange(m), float(dt),
                   spec, np.arange(n), None, states, names)

    def split(self, fractions: Sequence[float] = (0.7, 0.15, 0.15), *,
              seed: int | np.random.Generator = 0) -> tuple[StepData, ...]:
        """Disjoint parts by whole trajectory (see :func:`split_by_trajectory`), one StepData per fraction."""
        return tuple(self.take(index) for index in split_by_trajectory(self.n_traj, fractions, seed=seed))

    def windows(self, window: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Training pairs: ``window + horizon − 1`` consecutive inputs and the ``horizon`` targets that follow.

        With ``horizon = 1`` these are teacher-forced one-step pairs (the window ends at the state whose
        increment is the target); a longer horizon feeds a multi-step loss through the model's own rollout,
        which uses only the known-input columns of the inputs past the first window.

        Returns
        -------
        inputs : ndarray of shape (n_windows, window + horizon − 1, n_in)
        targets : ndarray of shape (n_windows, horizon, n_obs)
        """
        n_steps = self.observed.shape[1]
        span = window + horizon - 1
        if window < 1 or horizon < 1 or span > n_steps - 1:
            raise ValueError(f"window = {window} (with horizon {horizon}) does not fit trajectories of {n_steps} "
                             f"steps; window + horizon - 1 must be from 1 to {n_steps - 1}")
        u = self.inputs[:, :-1]  # the last state has no target
        x = np.lib.stride_tricks.sliding_window_view(u, span, axis=1)  # (n, n_win, n_in, span)
        x = np.moveaxis(x, -1, -2).reshape(-1, span, u.shape[-1])
        y = np.lib.stride_tricks.sliding_window_view(self.targets[:, window - 1:], horizon, axis=1)
        y = np.moveaxis(y, -1, -2).reshape(-1, horizon, self.n_obs)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _param_features(tr: Trajectories, names: Sequence[str]) -> np.ndarray:
    cols = []
    for name in names:
        value = tr.params[name]
        cols.append(value.reshape(tr.n_traj, -1))
    if not cols:
        return np.zeros((tr.n_traj, 0))
    return np.concatenate(cols, axis=1)


def build_step_data(tr: Trajectories, spec: FeatureSpec) -> StepData:
    """Observed states and known inputs of every trajectory in ``tr``."""
    if tr.system != spec.system:
        raise ValueError(f"the data are of the {tr.system} system but the model is for the {spec.system} system; "
                         "give a matching data file")
    dt = tr.dt
    if not np.isfinite(dt):
        raise ValueError("the data's time grid is not uniform; the Euler-style update needs a fixed dt")
    system = get_system(tr.system).from_params(tr.params).broadcast(tr.n_traj)
    observe = system.OBSERVATIONS[spec.observation]
    observed = tr.states if observe is None else tr.states[..., list(observe)]
    names = tr.state_names if observe is None else tuple(tr.state_names[i] for i in observe)
    drive = system.drive_features(tr.time, spec.drive)
    params = _param_features(tr, spec.parameters)
    known = np.concatenate([drive, np.broadcast_to(params[:, None, :], (tr.n_traj, tr.n_steps,
                                                                       params.shape[1]))], axis=-1)
    return StepData(np.ascontiguousarray(observed), np.ascontiguousarray(known), tr.time, dt, spec,
                    np.arange(tr.n_traj), system, tr.states, tuple(names))


def split_by_trajectory(n_traj: int, fractions: Sequence[float] = (0.7, 0.15, 0.15), *,
                        seed: int | np.random.Generator = 0) -> tuple[np.ndarray, ...]:
    """Disjoint trajectory indices for train / validation / test (sorted), shuffled from ``seed``.

    Each part with a positive fraction gets at least one trajectory.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions.tolist()}")
    need = int((fractions > 0).sum())
    if n_traj < need:
        raise ValueError(f"cannot split {n_traj} trajectories into {need} non-empty parts; generate more")
    order = np.random.default_rng(seed).permutation(n_traj)
    counts = np.floor(fractions * n_traj).astype(int)
    counts[(fractions > 0) & (counts == 0)] = 1
    counts[int(np.argmax(fractions))] += n_traj - counts.sum()
    edges = np.concatenate([[0], np.cumsum(counts)])
    return tuple(np.sort(order[edges[i]:edges[i + 1]]) for i in range(len(fractions)))


def split_by_parameter(values: np.ndarray, held_out: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories whose parameter lies in none of the ``held_out`` [lo, hi] intervals, and those that do.

    For generalisation tests: train on one range of a parameter, test inside a gap or beyond the range.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim > 1:
        v = v[:, 0]
    out = np.zeros(v.shape, dtype=bool)
    for lo, hi in held_out:
        out |= (v >= lo) & (v <= hi)
    return np.flatnonzero(~out), np.flatnonzero(out)


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation ``(z − mean) / scale``, fitted on training data only."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray) -> Scaler:
        """Fit on ``data`` of shape (..., n_features); constant features get scale 1 (passed through centred)."""
        flat = data.reshape(-1, data.shape[-1])
        mean = flat.mean(axis=0)
        scale = flat.std(axis=0)
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)
        return cls(mean, scale)

    def transform(self, data: np.ndarray) -> np.ndarray:
        return (data - self.mean) / self.scale

    def inverse(self, data: np.ndarray) -> np.ndarray:
        return data * self.scale + self.mean


def angle_features(x: np.ndarray, columns: tuple[int, ...]) -> np.ndarray:
    """The inputs (..., n_in) with each angle column replaced by its cosine and sine (appended at the end):
    what :class:`~physrnn.models.layers.AngleFeatures` gives a network, and the NVAR's features."""
    keep = [i for i in range(x.shape[-1]) if i not in columns]
    angles = x[..., list(columns)]
    return np.concatenate([x[..., keep], np.cos(angles), np.sin(angles)], axis=-1)


def angle_columns(angles: Sequence[str], state_names: Sequence[str]) -> tuple[int, ...]:
    """The observed columns of the components ``angles`` names; one that is not observed is refused."""
    missing = [a for a in angles if a not in state_names]
    if missing:
        raise ValueError(f"angles {', '.join(missing)} are not observed components; choose from "
                         f"{', '.join(state_names)}")
    return tuple(list(state_names).index(a) for a in angles)
