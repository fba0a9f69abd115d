r"""How well a rollout reproduces the physics: one definition per metric.

Arrays follow the trajectory-file layout: ``(n_traj, n_steps, n_state)`` for states, ``(n_steps,)`` for
time. Unless said otherwise a metric is computed per trajectory and state component over the steps given
(pass the closed-loop part, e.g. ``pred[:, context:]``, to leave out the true context), and NaN in a
prediction (a diverged rollout) propagates: a diverged trajectory has NaN error, never a small one.

The truth and the prediction are keyword-only, ``rmse(true=..., pred=...)``: some metrics are not symmetric
(``nrmse`` scales by the truth's spread, ``valid_time`` by its range), and a positional call in the other
order (scikit-learn's is ``y_true, y_pred``) would change the value silently.

=====================  =====================================================================================
``rmse``               :math:`\sqrt{\langle (\hat s - s)^2 \rangle_t}`
``nrmse``              RMSE divided by the standard deviation *in time* of the true signal (per trajectory
                       and component); 1 means no better than predicting the signal's mean
``max_error``          :math:`\max_t |\hat s - s|`
``valid_time``         first time :math:`|\hat s - s|` exceeds ``fraction`` × the true signal's range
                       (max − min over the horizon) in any component; the horizon's end if never
``valid_lyapunov_times`` the valid time in Lyapunov times, :math:`\lambda_1 t_{valid}`, where some trajectory may be
                       chaotic (a driven nonlinear system, full observation): λ1 of each true orbit from
                       :func:`attractor_exponent`; NaN where λ1 is not positive (no chaos to be measured by)
``lyapunov_nrmse``     Gauthier et al.'s NRMSE over the first Lyapunov time of the closed loop, where the flow
                       is autonomous and may be chaotic (Lorenz-63): :math:`\sqrt{\langle |\hat s - s|^2
                       \rangle / \sum_c \sigma_c^2}`, the mean over the steps within :math:`1/\lambda_1` of the
                       loop's start and over components, :math:`\sigma_c^2` each component's variance on the
                       attractor (:func:`attractor_variance`)
``energy_error``       :math:`\max_t |E(\hat s) - E(s)| / \max_t E(s)` of the system's energy invariant, e.g.
                       the oscillator's :math:`E = v^2/2 + \omega_0^2 x^2/2` (full observation only)
``steady_state``       amplitude and phase of the component at frequency Ω, by least squares on a window
``damping_from_decay`` damped angular frequency and damping ratio from successive maxima (log decrement)
``eigen_errors``       eigenvalue error of the Rayleigh quotient, eigenvector angle, norm drift
=====================  =====================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulators.eigen import rayleigh_quotient
from simulators.integrate import LyapunovEstimate, lyapunov_exponent

__all__ = ["LYAPUNOV_PERIODS", "METRICS", "DecayFit", "EigenErrors", "Metric", "SteadyState", "attractor_exponent",
           "attractor_variance", "damping_from_decay", "eigen_errors",
           "invariant_error", "max_error", "nrmse", "register_metric", "rmse", "steady_state", "valid_time"]


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if pred.shape != true.shape:
        raise ValueError(f"prediction of shape {pred.shape} and truth of shape {true.shape} differ; compare "
                         "the same trajectories, steps and components")
    return pred, true


def rmse(*, true: np.ndarray, pred: np.ndarray, axis: int | tuple[int, ...] = -2) -> np.ndarray:
    """Root-mean-square error over ``axis`` (default: time, giving one value per trajectory and component)."""
    pred, true = _pair(pred, true)
    return np.sqrt(np.mean((pred - true) ** 2, axis=axis))


def nrmse(*, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RMSE over time divided by the true signal's standard deviation over time, shape (n_traj, n_state).

    A component that is constant in time has no scale to normalise by and gives NaN.
    """
    pred, true = _pair(pred, true)
    scale = np.std(true, axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, rmse(true=true, pred=pred) / np.where(scale > 0, scale, 1.0), np.nan)


def max_error(*, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Largest absolute error over time, shape (n_traj, n_state); NaN if the prediction has any NaN."""
    pred, true = _pair(pred, true)
    return np.max(np.abs(pred - true), axis=-2)


def invariant_error(*, true: np.ndarray, pred: np.ndarray, invariant: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Largest error of an invariant along the rollout relative to its largest true value, per trajectory.

    ``invariant`` maps states (n_traj, n_steps, n_state) to values (n_traj, n_steps), e.g. the oscillator's
    energy ``v²/2 + ω0² x²/2`` (:meth:`simulators.LinearOscillator.energy`). The scale is the trajectory's own
    largest true value, so a decaying or driven trajectory is judged against what it holds, not against zero.
    """
    pred, true = _pair(pred, true)
    e_true = invariant(true)
    return np.max(np.abs(invariant(pred) - e_true), axis=-1) / np.max(np.abs(e_true), axis=-1)


def beyond_valid(*, true: np.ndarray, pred: np.ndarray, fraction: float) -> np.ndarray:
    """Where some component's error exceeds ``fraction`` of its true range over the horizon given (a NaN
    prediction counts), bool (n_traj, n_steps): the valid-time rule, shared with the error-growth fit."""
    span = true.max(axis=-2, keepdims=True) - true.min(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore"):
        return (~(np.abs(pred - true) <= fraction * span)).any(axis=-1)


def valid_time(*, true: np.ndarray, pred: np.ndarray, time: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Time until the error first exceeds ``fraction`` of the true signal's range, per trajectory.

    The range is max − min of each true component over the horizon given; the first step at which any
    component's error exceeds its share counts (a NaN prediction counts as exceeding). A rollout that
    never exceeds it gets the horizon's length, ``time[-1] − time[0]``. To express it in periods divide by
    ``2π/Ω`` (drive) or ``2π/ω_d`` (free motion).

    Returns
    -------
    ndarray of shape (n_traj,)
    """
    pred, true = _pair(pred, true)
    if not 0 < fraction:
        raise ValueError(f"fraction must be > 0, got {fraction!r}")
    time = np.asarray(time, dtype=float)
    bad = beyond_valid(true=true, pred=pred, fraction=fraction)
    first = np.argmax(bad, axis=-1)
    return np.where(bad.any(axis=-1), time[first] - time[0], time[-1] - time[0])


@dataclass(frozen=True)
class SteadyState:
    """``x ≈ offset + amplitude cos(Ω t − lag)`` on the fitted window (per trajectory)."""

    amplitude: np.ndarray
    lag: np.ndarray
    offset: np.ndarray
    residual: np.ndarray


def steady_state(x: np.ndarray, time: np.ndarray, frequency: float | np.ndarray, *,
                 phase: float | np.ndarray = 0.0) -> SteadyState:
    """Amplitude and phase lag of the response at the drive frequency, by linear least squares.

    Fits ``x(t) ≈ c + a cos(Ωt + φ) + b sin(Ωt + φ)`` per trajectory on the samples given (pass the late,
    steady part), so ``lag = atan2(b, a)`` is the phase by which the response trails the drive
    ``cos(Ωt + φ)``, in (−π, π]; compare with :func:`simulators.steady_state_response`.

    Parameters
    ----------
    x : ndarray of shape (n_traj, n_steps)
    time : ndarray of shape (n_steps,)
    frequency, phase : float or ndarray of shape (n_traj,)
        Ω and φ of the drive.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    n = x.shape[0]
    om = np.broadcast_to(np.asarray(frequency, dtype=float), (n,))
    ph = np.broadcast_to(np.asarray(phase, dtype=float), (n,))
    amp, lag, off, res = (np.empty(n) for _ in range(4))
    for i in range(n):  # a 3-column least-squares problem each: no need to vectorise
        arg = om[i] * time + ph[i]
        design = np.column_stack([np.ones_like(time), np.cos(arg), np.sin(arg)])
        coef, *_ = np.linalg.lstsq(design, x[i], rcond=None)
        off[i], a, b = coef
        amp[i], lag[i] = np.hypot(a, b), np.arctan2(b, a)
        res[i] = np.sqrt(np.mean((design @ coef - x[i]) ** 2))
    return SteadyState(amplitude=amp, lag=lag, offset=off, residual=res)


@dataclass(frozen=True)
class DecayFit:
    """Free-decay parameters recovered from a trajectory (NaN where fewer than two maxima were found)."""

    damped_frequency: np.ndarray
    damping_ratio: np.ndarray
    n_peaks: np.ndarray


def damping_from_decay(x: np.ndarray, time: np.ndarray) -> DecayFit:
    """Damped angular frequency and damping ratio of free, under-damped motion, from its maxima.

    Each local maximum is located to sub-step accuracy by a parabola through the three samples around it.
    The damped frequency is 2π over the mean spacing of the maxima; the logarithmic decrement
    ``δ = ln(x_k / x_{k+1})`` (from a straight-line fit of ``ln x_k`` against the peak index) gives the damping
    ratio ``ζ = δ / √(4π² + δ²)``, and hence ``η = 2 ζ ω0`` with ``ω0 = ω_d / √(1 − ζ²)``.

    Parameters
    ----------
    x : ndarray of shape (n_traj, n_steps)
        Position of free motion about 0.
    time : ndarray of shape (n_steps,), uniform
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    dt = time[1] - time[0]
    freq, zeta, count = (np.full(x.shape[0], np.nan) for _ in range(3))
    for i, xi in enumerate(x):
        inner = np.flatnonzero((xi[1:-1] > xi[:-2]) & (xi[1:-1] >= xi[2:]) & (xi[1:-1] > 0)) + 1
        # Sub-sample vertex of the parabola through (k−1, k, k+1).
        left, mid, right = xi[inner - 1], xi[inner], xi[inner + 1]
        curvature = left - 2 * mid + right
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
        t_peak = time[inner] + shift * dt
        x_peak = mid - 0.25 * (left - right) * shift
        count[i] = len(inner)
        if len(inner) < 2 or (x_peak <= 0).any():
            continue
        period = np.mean(np.diff(t_peak))
        freq[i] = 2 * np.pi / period
        decrement = -np.polyfit(np.arange(len(x_peak)), np.log(x_peak), 1)[0]
        zeta[i] = decrement / np.sqrt(4 * np.pi**2 + decrement**2)
    return DecayFit(damped_frequency=freq, damping_ratio=zeta, n_peaks=count)


@dataclass(frozen=True)
class EigenErrors:
    """Eigen-flow errors at the end of each rollout (per trajectory)."""

    eigenvalue_error: np.ndarray
    eigenvector_angle: np.ndarray
    norm_drift: np.ndarray


def eigen_errors(states: np.ndarray, matrix: np.ndarray, *, smallest: bool = False) -> EigenErrors:
    """Errors of the eigenpair a rollout of the eigen flow reaches, against ``numpy.linalg.eigh``.

    ``eigenvalue_error`` is the Rayleigh quotient of the final state minus λmax (λmin if ``smallest``, for a
    flow of −A); ``eigenvector_angle`` the angle in radians between the final state and that eigenvector
    (sign-blind, in [0, π/2]); ``norm_drift`` the largest relative change of ‖x‖ along the rollout (the flow
    conserves it exactly).

    Parameters
    ----------
    states : ndarray of shape (n_traj, n_steps, n)
    matrix : ndarray of shape (n, n) or (n_traj, n, n)
    """
    states = np.asarray(states, dtype=float)
    a = np.broadcast_to(np.asarray(matrix, dtype=float), (states.shape[0],) + states.shape[-1:] * 2)
    w, v = np.linalg.eigh(a)
    j = 0 if smallest else -1
    final = states[:, -1]
    rq = rayleigh_quotient(a, final)
    cos = np.abs(np.einsum("bi,bi->b", final, v[:, :, j])) / np.linalg.norm(final, axis=-1)
    norms = np.linalg.norm(states, axis=-1)
    drift = np.max(np.abs(norms - norms[:, :1]), axis=-1) / norms[:, 0]
    return EigenErrors(eigenvalue_error=rq - w[:, j], eigenvector_angle=np.arccos(np.clip(cos, 0.0, 1.0)),
                       norm_drift=drift)


# ---------------------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Metric:
    """A closed-loop score of a rollout, one definition used everywhere (evaluation, summaries, targets, sweep
    objectives, report columns, the command line).

    Attributes
    ----------
    name : str
        The per-trajectory score's name.
    label : str
        Its heading in tables.
    compute : callable
        ``compute(true=..., pred=..., time=..., system=..., valid_fraction=...)`` (always called by keyword) on the
        closed-loop steps, returning one value per trajectory, ndarray (n_traj,), or per trajectory and
        component, (n_traj, n_obs).
    better : {"min", "max"}
        Which way is better (targets bound it from that side; sweeps rank by it).
    aggregate : {"mean", "max", "median"}
        How a test set's trajectories are summarised; the summary is named ``name`` for mean and max,
        ``name_median`` for the median.
    applies : callable
        ``applies(system, observed_names)``: whether the score is defined (e.g. an energy needs the full state).
    """

    name: str
    label: str
    compute: Callable[..., np.ndarray]
    better: str = "min"
    aggregate: str = "mean"
    applies: Callable[..., bool] = lambda system, observed: True
    per_component: bool = False

    @property
    def key(self) -> str:
        """The name of the summary over trajectories."""
        return self.name if self.aggregate in ("mean", "max") else f"{self.name}_{self.aggregate}"

    def summarise(self, values: np.ndarray):
        """The summary over trajectories (axis 0): a list per component, or a float. NaN propagates."""
        reduce = {"mean": np.mean, "max": np.max, "median": np.median}[self.aggregate]
        out = reduce(values, axis=0)
        return out.tolist() if self.per_component else float(out)


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry (re-registering a name replaces it)."""
    if metric.better not in ("min", "max") or metric.aggregate not in ("mean", "max", "median"):
        raise ValueError(f"metric {metric.name!r}: better must be min or max and aggregate mean, max or median")
    METRICS[metric.name] = metric
    return metric


def _valid_periods(*, true, pred, time, system, valid_fraction):
    return valid_time(true=true, pred=pred, time=time, fraction=valid_fraction) / system.characteristic_period()


#: Benettin's average for λ1 runs over this many characteristic periods after a tenth as many of transient
#: (for the chaotic Duffing attractor, 2π/Ω = 5.2: about 1050 time units, a standard error near 15 % per orbit).
LYAPUNOV_PERIODS = 200
_EXPONENTS: dict[bytes, LyapunovEstimate] = {}


def _orbit_key(system, starts: np.ndarray, t0: float) -> bytes:
    """What determines the true orbits from ``starts`` (float64) at ``t0``: the system, its parameters, the starts."""
    return b"".join([type(system).__name__.encode(), starts.tobytes(), np.float64(t0).tobytes(),
                     *(np.ascontiguousarray(getattr(system, p), np.float64).tobytes() for p in system.PARAMETERS)])


def attractor_exponent(system, starts: np.ndarray, t0: float) -> LyapunovEstimate:
    """The largest Lyapunov exponent of each true orbit from ``starts`` (n_traj, n_state) at ``t0``, from the
    reference integrator (:func:`simulators.lyapunov_exponent`) over :data:`LYAPUNOV_PERIODS` characteristic
    periods. Computed once per process for the same system, starts and t0 (every model of a study asks)."""
    starts = np.ascontiguousarray(starts, dtype=np.float64)
    key = _orbit_key(system, starts, t0)
    if key not in _EXPONENTS:
        period = float(np.max(system.characteristic_period()))
        _EXPONENTS[key] = lyapunov_exponent(system, starts, t0, duration=LYAPUNOV_PERIODS * period,
                                            transient=LYAPUNOV_PERIODS * period / 10)
    return _EXPONENTS[key]


_VARIANCES: dict[bytes, np.ndarray] = {}


def attractor_variance(system, starts: np.ndarray, t0: float) -> np.ndarray:
    """The summed variance of the state's components along the true orbit from each of ``starts`` (n_traj,
    n_state) at ``t0``, over :data:`LYAPUNOV_PERIODS` characteristic periods of the reference solution read 20
    times a period (Gauthier et al. normalise by the variance of the whole solution), ndarray (n_traj,).
    Computed once per process for the same system, starts and t0."""
    from simulators.integrate import solve

    starts = np.ascontiguousarray(starts, dtype=np.float64)
    key = _orbit_key(system, starts, t0)
    if key not in _VARIANCES:
        period = float(np.max(system.characteristic_period()))
        grid = t0 + period / 20 * np.arange(20 * LYAPUNOV_PERIODS + 1)
        orbit = solve(system, starts, grid, method="reference")
        _VARIANCES[key] = orbit.var(axis=1).sum(axis=-1)
    return _VARIANCES[key]


def _lyapunov_nrmse(*, true, pred, time, system, valid_fraction):
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    exponent = attractor_exponent(system, true[:, 0], time[0]).exponent
    variance = attractor_variance(system, true[:, 0], time[0])
    dt = time[1] - time[0]
    since = time - time[0] + dt  # the first scored step is one step after the loop closed
    with np.errstate(divide="ignore", invalid="ignore"):
        horizon = np.where(exponent > 0, 1.0 / exponent, np.nan)
        inside = since[None, :] <= horizon[:, None] * (1 + 1e-9)  # (n_traj, n_steps)
        squared = np.where(inside, ((pred - true) ** 2).mean(axis=-1), 0.0)  # (n_traj, n_steps), NaN if diverged
        mean = squared.sum(axis=1) / inside.sum(axis=1)  # NaN where a step inside diverged
        return np.where(exponent > 0, np.sqrt(mean / variance), np.nan)  # none where λ1 is not positive


def _valid_lyapunov_times(*, true, pred, time, system, valid_fraction):
    exponent = attractor_exponent(system, true[:, 0], time[0]).exponent
    with np.errstate(invalid="ignore"):
        return np.where(exponent > 0, valid_time(true=true, pred=pred, time=time, fraction=valid_fraction) * exponent, np.nan)


def _energy(*, true, pred, time, system, valid_fraction):
    return invariant_error(true=true, pred=pred, invariant=system.invariants()["energy"])


def _full_state(system, observed) -> bool:
    return system is not None and tuple(observed) == tuple(system.state_names)


register_metric(Metric("rmse", "RMSE", lambda *, true, pred, **_: rmse(true=true, pred=pred), per_component=True))
register_metric(Metric("nrmse", "NRMSE", lambda *, true, pred, **_: nrmse(true=true, pred=pred), per_component=True))
register_metric(Metric("max_error", "max error", lambda *, true, pred, **_: max_error(true=true, pred=pred),
                       aggregate="max", per_component=True))
register_metric(Metric("valid_time", "valid time",
                       lambda *, true, pred, time, valid_fraction, **_: valid_time(true=true, pred=pred, time=time,
                                                                                  fraction=valid_fraction),
                       better="max", aggregate="median"))
register_metric(Metric("valid_periods", "valid periods", _valid_periods, better="max", aggregate="median",
                       applies=lambda system, observed: system is not None
                       and system.characteristic_period() is not None))
register_metric(Metric("valid_lyapunov_times", "valid Lyapunov times", _valid_lyapunov_times, better="max",
                       aggregate="median",
                       applies=lambda system, observed: _full_state(system, observed) and system.may_be_chaotic()))
register_metric(Metric("lyapunov_nrmse", "NRMSE over 1/λ1", _lyapunov_nrmse,
                       applies=lambda system, observed: _full_state(system, observed) and system.may_be_chaotic()
                       and not system.is_driven))
register_metric(Metric("energy_error", "energy error", _energy,
                       applies=lambda system, observed: _full_state(system, observed)
                       and "energy" in system.invariants()))
