r"""The physics read back from a rollout, and the groups a study's test set is broken down into.

Every function here takes the closed-loop part of a rollout and the truth it came from, and returns one
value per test trajectory, so a study can average them over any group of trajectories and then over seeds.

Physical analyses (chosen by the system and its drive, see :func:`physics_of`):

=============  =========================================================================================
``decay``      free motion: damped angular frequency ω_d and damping ratio ζ recovered from the rollout's
               maxima (:func:`physrnn.metrics.damping_from_decay`) against ω_d = ω0 √(1 − ζ²),
               ζ = η/(2ω0); under-damped trajectories only (the others have no maxima to count)
``resonance``  driven motion: amplitude and phase lag of the late rollout at Ω
               (:func:`physrnn.metrics.steady_state`) against the resonance curve
               F0/√((ω0² − Ω²)² + (ηΩ)²), lag = atan2(ηΩ, ω0² − Ω²)
``eigen``      the eigen flow: the Rayleigh quotient of the rollout's last state against λmax of the flow's
               matrix from ``numpy.linalg.eigh`` (λmin(A) = −λmax(−A) for a flow of −A), the eigenvector
               angle and the drift of ‖x‖
=============  =========================================================================================

Each analysis is also run on the exact solution itself: its error is the floor of the estimator (a finite
window, a transient not yet fully decayed), against which a model's figure should be read.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from simulators import steady_state_response

from .metrics import damping_from_decay, eigen_errors, steady_state

__all__ = ["GROUPINGS", "HEADLINES", "analyse", "applicable", "characteristic_period", "groups_of", "headline",
           "physics_of", "rayleigh_error_trace"]

#: Ways to break a test set down (besides any parameter name).
GROUPINGS = ("regime", "training_range")
_TOL = 1e-9  # relative: parameters equal up to rounding count as equal (ζ = 1 exactly, a range's end point)


def _damping_ratio(params: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(params["damping"], float) / (2 * np.asarray(params["natural_frequency"], float))


def _is_driven(params: Mapping[str, np.ndarray]) -> np.ndarray:
    amp = np.asarray(params.get("drive_amplitude", np.zeros((len(params["damping"]), 1))), float)
    return (amp.reshape(len(amp), -1) != 0).any(axis=1)


def characteristic_period(system: str, params: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """One period per trajectory for valid times in periods: 2π/Ω of the (first) drive term for driven
    motion, 2π/ω_d for free under-damped motion, 2π/ω0 otherwise; None for the eigen flow (no period)."""
    if system != "oscillator":
        return None
    w0 = np.asarray(params["natural_frequency"], float)
    zeta = _damping_ratio(params)
    with np.errstate(invalid="ignore"):
        free = np.where(zeta < 1, w0 * np.sqrt(np.clip(1 - zeta**2, 0, None)), w0)
    omega = np.asarray(params["drive_frequency"], float).reshape(len(w0), -1)[:, 0]
    return 2 * np.pi / np.where(_is_driven(params), omega, free)


# ------------------------------------------------------------------------------------------------ groups
def groups_of(by: str | None, params: Mapping[str, np.ndarray], *,
              train_params: Mapping[str, np.ndarray] | None = None,
              parameters: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Test-trajectory indices per group, in a stable order; ``{}`` when ``by`` is None.

    ``"regime"``: under-, critically and over-damped (ζ < 1, ζ = 1, ζ > 1). ``"training_range"``: inside or
    outside the training data's range of every model parameter in ``parameters`` (interpolation against
    extrapolation). A parameter name: one group per value (at most 12 distinct values), else 4 equal bins.
    """
    if by is None:
        return {}
    n = len(next(iter(params.values())))
    if by == "regime":
        zeta = _damping_ratio(params)
        critical = np.abs(zeta - 1) <= _TOL
        parts = {"under-damped (ζ < 1)": ~critical & (zeta < 1), "critically damped (ζ = 1)": critical,
                 "over-damped (ζ > 1)": ~critical & (zeta > 1)}
    elif by == "training_range":
        if train_params is None or not parameters:
            raise ValueError("grouping by training_range needs parameter-aware models; list the parameters in "
                             "[features] parameters")
        inside = np.ones(n, dtype=bool)
        for name in parameters:
            train = np.asarray(train_params[name], float).reshape(len(train_params[name]), -1)
            test = np.asarray(params[name], float).reshape(n, -1)
            lo, hi = train.min(axis=0), train.max(axis=0)
            slack = _TOL * np.maximum(1.0, np.abs(hi))
            inside &= ((test >= lo - slack) & (test <= hi + slack)).all(axis=1)
        parts = {"inside the training range": inside, "outside the training range": ~inside}
    else:
        if by not in params:
            raise ValueError(f"cannot group by {by!r}: the test data have no such parameter; use regime, "
                             f"training_range or one of {', '.join(sorted(params))}")
        values = np.asarray(params[by], float).reshape(n, -1)[:, 0]
        distinct = np.unique(values)
        if len(distinct) <= 12:
            parts = {f"{by} = {v:g}": values == v for v in distinct}
        else:
            edges = np.linspace(values.min(), values.max(), 5)
            bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, 3)
            parts = {f"{by} in [{edges[i]:.3g}, {edges[i + 1]:.3g}{']' if i == 3 else ')'}": bins == i
                     for i in range(4)}
    return {label: np.flatnonzero(mask) for label, mask in parts.items() if mask.any()}


# ------------------------------------------------------------------------------------------------ physics
def physics_of(system: str, params: Mapping[str, np.ndarray], observed: tuple[str, ...]) -> str | None:
    """Which physical analysis applies: ``decay``, ``resonance``, ``eigen``, or None."""
    if system == "eigen":
        return "eigen"
    if "x" not in observed:
        return None
    return "resonance" if _is_driven(params).any() else "decay"


def decay(x: np.ndarray, time: np.ndarray, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Recovered ω_d and ζ per trajectory (NaN where not under-damped or fewer than two maxima)."""
    zeta = _damping_ratio(params)
    w0 = np.asarray(params["natural_frequency"], float)
    fit = damping_from_decay(x, time)
    under = zeta < 1 - _TOL
    with np.errstate(invalid="ignore", divide="ignore"):  # ω_d = 0 at and beyond critical: masked out below
        wd = w0 * np.sqrt(np.clip(1 - zeta**2, 0, None))
        return {"damping_ratio": np.where(under, fit.damping_ratio, np.nan),
                "damping_ratio_error": np.where(under, np.abs(fit.damping_ratio - zeta), np.nan),
                "damped_frequency": np.where(under, fit.damped_frequency, np.nan),
                "damped_frequency_rel_error": np.where(under, np.abs(fit.damped_frequency / wd - 1), np.nan)}


def resonance(x: np.ndarray, time: np.ndarray, params: Mapping[str, np.ndarray], *,
              steady_fraction: float) -> dict[str, np.ndarray]:
    """Steady-state amplitude and lag on the last ``steady_fraction`` of ``time``, against the analytic curve.

    Single-term drives only (the resonance curve of one frequency); the phase error is wrapped to (−π, π].
    """
    n = x.shape[0]
    amp = np.asarray(params["drive_amplitude"], float).reshape(n, -1)
    if amp.shape[1] != 1:
        raise ValueError("the resonance analysis is for single-frequency drives; this ensemble has "
                         f"{amp.shape[1]} drive terms")
    om = np.asarray(params["drive_frequency"], float).reshape(n)
    phase = np.asarray(params["drive_phase"], float).reshape(n)
    start = int(np.searchsorted(time, time[-1] - steady_fraction * (time[-1] - time[0])))
    fit = steady_state(x[:, start:], time[start:], om, phase=phase)
    gain, lag = steady_state_response(params["damping"], params["natural_frequency"], om)
    expected = np.abs(amp[:, 0]) * gain
    lag = np.where(amp[:, 0] < 0, lag - np.pi, lag)  # a negative amplitude is a drive shifted by π
    return {"drive_frequency": om, "amplitude": fit.amplitude, "lag": fit.lag, "amplitude_exact": expected,
            "lag_exact": np.angle(np.exp(1j * lag)),
            "amplitude_rel_error": np.abs(fit.amplitude / expected - 1),
            "phase_error": np.abs(np.angle(np.exp(1j * (fit.lag - lag))))}


def eigen(states: np.ndarray, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Eigenvalue (relative), eigenvector and norm errors at the end of each rollout."""
    matrix = np.asarray(params["matrix"], float)
    err = eigen_errors(states, matrix)
    top = np.linalg.eigvalsh(np.broadcast_to(matrix, (states.shape[0],) + matrix.shape[-2:]))[:, -1]
    return {"eigenvalue_rel_error": np.abs(err.eigenvalue_error) / np.abs(top),
            "eigenvector_angle": err.eigenvector_angle, "norm_drift": err.norm_drift}


def rayleigh_error_trace(states: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """|xᵀAx/xᵀx − λmax| / |λmax| at every step, shape (n_traj, n_steps): the eigenvalue-convergence curve."""
    a = np.broadcast_to(np.asarray(matrix, float), (states.shape[0],) + states.shape[-1:] * 2)
    top = np.linalg.eigvalsh(a)[:, -1]
    rq = np.einsum("bti,bij,btj->bt", states, a, states) / np.einsum("bti,bti->bt", states, states)
    return np.abs(rq - top[:, None]) / np.abs(top[:, None])


def analyse(kind: str | None, states: np.ndarray, time: np.ndarray, params: Mapping[str, np.ndarray], *,
            steady_fraction: float) -> dict[str, np.ndarray]:
    """The per-trajectory figures of analysis ``kind`` on closed-loop ``states`` (n_traj, n_steps, n_obs)."""
    if kind == "decay":
        return decay(states[..., 0], time, params)
    if kind == "resonance":
        return resonance(states[..., 0], time, params, steady_fraction=steady_fraction)
    if kind == "eigen":
        return eigen(states, params)
    return {}


#: The figures of each analysis a summary table shows (median over trajectories), with their headings.
HEADLINES: dict[str, dict[str, str]] = {
    "decay": {"damping_ratio_error": "|ζ error|", "damped_frequency_rel_error": "ω_d rel. error"},
    "resonance": {"amplitude_rel_error": "amplitude rel. error", "phase_error": "phase error [rad]"},
    "eigen": {"eigenvalue_rel_error": "eigenvalue rel. error", "eigenvector_angle": "eigenvector angle [rad]",
              "norm_drift": "norm drift"},
}


_WORST = ("eigenvalue_rel_error", "amplitude_rel_error")


def headline(kind: str | None, figures: Mapping[str, Any], applies: np.ndarray | None = None) -> dict[str, float]:
    """Median over trajectories of each headline figure, and the worst eigenvalue and amplitude errors.

    ``applies`` selects the trajectories the analysis is defined for (from the exact solution's figures, e.g.
    the under-damped ones for ``decay``); among them a diverged rollout's NaN propagates, so a failure is
    never averaged away.
    """
    out = {}
    for key in HEADLINES.get(kind or "", {}):
        values = np.asarray(figures[key], float)
        if applies is not None:
            values = values[applies]
        out[key] = float(np.median(values)) if values.size else float("nan")
        if key in _WORST:  # the median hides the one start or the resonance peak a model gets wrong
            out[f"{key}_max"] = float(np.max(values)) if values.size else float("nan")
    return out


def applicable(kind: str | None, exact_figures: Mapping[str, Any]) -> np.ndarray | None:
    """Trajectories on which analysis ``kind`` gives a finite figure for the exact solution."""
    keys = list(HEADLINES.get(kind or "", {}))
    if not keys:
        return None
    return np.isfinite(np.asarray(exact_figures[keys[0]], float))
