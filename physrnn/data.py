r"""From trajectory files to the learning problem.

A model learns the Euler-style update of the *observed* state :math:`o`,

.. math::  o_{i+1} = o_i + \Delta t\, g_\theta(u_{\le i}), \qquad u_i = (o_i,\ d_i,\ p),

where :math:`d_i` is the known drive at :math:`t_i` and :math:`p` the physical parameters (for
parameter-aware models). The target of :math:`g_\theta` is the exact increment
:math:`(o_{i+1} - o_i)/\Delta t`; an input never contains :math:`o_{i+1}`.

Observation modes: ``"full"`` (the whole state: (x, v) for the oscillator, x ∈ Rⁿ for the eigen flow) and
``"position"`` (oscillator only: x alone, so a model must carry the velocity in its memory).

Drive features (oscillator): ``"phase"`` gives (cos, sin) of each term's phase :math:`\Omega_k t + \varphi_k`,
from which the exact one-step map is affine; ``"force"`` gives F(t) alone.

Splits are by whole trajectory, from a seed, or by parameter value; the scaler is fitted on the training
part only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from simulators.ensemble import system_from_params
from simulators.trajectory_file import Trajectories

__all__ = ["FeatureSpec", "Scaler", "StepData", "build_step_data", "split_by_parameter", "split_by_trajectory"]

OBSERVATIONS = ("full", "position")
DRIVE_FEATURES = ("phase", "force", "none")
#: Parameters a parameter-aware oscillator model sees (drive terms contribute one column each).
OSCILLATOR_PARAMS = ("damping", "natural_frequency", "drive_amplitude", "drive_frequency")


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """What a model observes and is given as known input.

    Parameters
    ----------
    system : {"oscillator", "eigen"}
    observation : {"full", "position"}
    drive : {"phase", "force", "none"}
        Known-drive features for the oscillator ("none" for free motion and the eigen flow).
    parameters : tuple of str
        Physical parameters given to the model at every step (empty: not parameter-aware).
    """

    system: str
    observation: str = "full"
    drive: str = "phase"
    parameters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.system not in ("oscillator", "eigen"):
            raise ValueError(f"unknown system {self.system!r}; choose oscillator or eigen")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"unknown observation {self.observation!r}; choose one of {', '.join(OBSERVATIONS)}")
        if self.drive not in DRIVE_FEATURES:
            raise ValueError(f"unknown drive features {self.drive!r}; choose one of {', '.join(DRIVE_FEATURES)}")
        if self.system == "eigen":
            if self.observation != "full":
                raise ValueError("the eigen flow is observed in full; observation must be 'full'")
            if self.parameters:
                raise ValueError("eigen-flow models take no parameters; the matrix is learned from the data")
        unknown = set(self.parameters) - set(OSCILLATOR_PARAMS)
        if unknown:
            raise ValueError(f"unknown parameter feature(s) {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(OSCILLATOR_PARAMS)}")
        object.__setattr__(self, "parameters", tuple(self.parameters))

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
    system : LinearOscillator or EigenFlow
        The true system, one parameter set per trajectory (for the physics baselines and the metrics).
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
        index = np.asarray(index)
        return StepData(self.observed[index], self.known[index], self.time, self.dt, self.spec,
                        self.trajectories[index], self.system.take(index), self.states[index], self.state_names)

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


def _drive_features(tr: Trajectories, mode: str) -> np.ndarray:
    n, m = tr.n_traj, tr.n_steps
    if mode == "none" or tr.system != "oscillator":
        return np.zeros((n, m, 0))
    if mode == "force":
        if tr.drive is None:
            return np.zeros((n, m, 1))
        return tr.drive[..., :1]
    freq, phase = tr.params["drive_frequency"], tr.params["drive_phase"]
    arg = freq[:, None, :] * tr.time[None, :, None] + phase[:, None, :]  # (n, m, K)
    return np.stack([np.cos(arg), np.sin(arg)], axis=-1).reshape(n, m, -1)


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
    observed = tr.states if spec.observation == "full" else tr.states[..., :1]
    drive = _drive_features(tr, spec.drive)
    params = _param_features(tr, spec.parameters)
    known = np.concatenate([drive, np.broadcast_to(params[:, None, :], (tr.n_traj, tr.n_steps,
                                                                       params.shape[1]))], axis=-1)
    names = tr.state_names if spec.observation == "full" else tr.state_names[:1]
    system = system_from_params(tr.system, tr.params).broadcast(tr.n_traj)
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
