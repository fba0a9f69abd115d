r"""The physics read back from a rollout, and the groups a study's test set is broken down into.

Every analysis takes the closed-loop part of a rollout and the true system (one parameter set per test
trajectory), and returns one value per test trajectory, so a study can average them over any group of
trajectories and then over seeds. Which analysis applies is the system's to say
(:meth:`simulators.system.PhysicalSystem.physics_analysis`); the analyses themselves are a registry
(:data:`ANALYSES`, :func:`register_analysis`), so a new system brings a new analysis as one function and one
registry line.

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

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from simulators import rayleigh_quotient, steady_state_response
from simulators.system import PhysicalSystem

from .metrics import damping_from_decay, eigen_errors, steady_state

__all__ = ["ANALYSES", "Analysis", "GROUPINGS", "analyse", "applicable", "groups_of", "headline",
           "rayleigh_error_trace", "register_analysis"]

#: Ways to break any test set down (besides the system's own groupings and any parameter name).
GROUPINGS = ("training_range",)
_TOL = 1e-9  # relative: parameters equal up to rounding count as equal (a range's end point)


# ------------------------------------------------------------------------------------------------ groups
def groups_of(by: str | None, params: Mapping[str, np.ndarray], *, system: PhysicalSystem | None = None,
              train_params: Mapping[str, np.ndarray] | None = None,
              parameters: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Test-trajectory indices per group, in a stable order; ``{}`` when ``by`` is None.

    A grouping of the system (``system.GROUPINGS``, e.g. the oscillator's ``"regime"``: under-, critically and
    over-damped) is the system's own. ``"training_range"``: inside or outside the training data's range of every
    model parameter in ``parameters`` (interpolation against extrapolation). A parameter name: one group per
    value (at most 12 distinct values), else 4 equal bins.
    """
    if by is None:
        return {}
    n = len(next(iter(params.values())))
    if system is not None and by in system.GROUPINGS:
        parts = system.groups(by)
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
            own = system.GROUPINGS if system is not None else ()
            raise ValueError(f"cannot group by {by!r}: the test data have no such parameter; use "
                             f"{', '.join((*own, *GROUPINGS))} or one of {', '.join(sorted(params))}")
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


# ------------------------------------------------------------------------------------------------ analyses
def decay(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """Recovered ω_d and ζ per trajectory (NaN where not under-damped or fewer than two maxima)."""
    zeta = system.damping_ratio
    fit = damping_from_decay(states[..., 0], time)
    under = zeta < 1 - _TOL
    wd = system.damped_frequency
    with np.errstate(invalid="ignore", divide="ignore"):  # ω_d is NaN at and beyond critical: masked out below
        return {"damping_ratio": np.where(under, fit.damping_ratio, np.nan),
                "damping_ratio_error": np.where(under, np.abs(fit.damping_ratio - zeta), np.nan),
                "damped_frequency": np.where(under, fit.damped_frequency, np.nan),
                "damped_frequency_rel_error": np.where(under, np.abs(fit.damped_frequency / wd - 1), np.nan)}


def steady_start(time: np.ndarray, steady_fraction: float) -> int:
    """The first step of the last ``steady_fraction`` of ``time`` (where a steady state or a cycle is read)."""
    return int(np.searchsorted(time, time[-1] - steady_fraction * (time[-1] - time[0])))


def resonance(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """Steady-state amplitude and lag on the last ``steady_fraction`` of ``time``, against the analytic curve.

    Single-term drives only (the resonance curve of one frequency); the phase error is wrapped to (−π, π].
    """
    x = states[..., 0]
    amp = system.drive_amplitude
    if amp.shape[1] != 1:
        raise ValueError("the resonance analysis is for single-frequency drives; this ensemble has "
                         f"{amp.shape[1]} drive terms")
    om, phase = system.drive_frequency[:, 0], system.drive_phase[:, 0]
    start = steady_start(time, steady_fraction)
    fit = steady_state(x[:, start:], time[start:], om, phase=phase)
    gain, lag = steady_state_response(system.damping, system.natural_frequency, om)
    expected = np.abs(amp[:, 0]) * gain
    lag = np.where(amp[:, 0] < 0, lag - np.pi, lag)  # a negative amplitude is a drive shifted by π
    return {"drive_frequency": om, "amplitude": fit.amplitude, "lag": fit.lag, "amplitude_exact": expected,
            "lag_exact": np.angle(np.exp(1j * lag)),
            "amplitude_rel_error": np.abs(fit.amplitude / expected - 1),
            "phase_error": np.abs(np.angle(np.exp(1j * (fit.lag - lag))))}


def eigen(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """Eigenvalue (relative), eigenvector and norm errors at the end of each rollout."""
    matrix = system.matrix
    err = eigen_errors(states, matrix)
    top = np.linalg.eigvalsh(np.broadcast_to(matrix, (states.shape[0],) + matrix.shape[-2:]))[:, -1]
    return {"eigenvalue_rel_error": np.abs(err.eigenvalue_error) / np.abs(top),
            "eigenvector_angle": err.eigenvector_angle, "norm_drift": err.norm_drift}


def _crossings(y: np.ndarray, t: np.ndarray, level: float) -> np.ndarray:
    """Times at which ``y`` crosses ``level`` upwards, linearly interpolated."""
    i = np.flatnonzero((y[:-1] < level) & (y[1:] >= level))
    return t[i] + (level - y[i]) * (t[i + 1] - t[i]) / (y[i + 1] - y[i])


def measured_period(y: np.ndarray, t: np.ndarray) -> float:
    """The mean period of one signal: the spacing of its upward crossings of the mid-level (max + min)/2, or,
    for a coordinate that runs away (a rotating pendulum's θ), the time it takes to advance by 2π. NaN
    with fewer than two crossings or a non-finite signal."""
    if not np.isfinite(y).all():
        return float("nan")
    turns = (y[-1] - y[0]) / (2 * np.pi)
    if abs(turns) >= 2 and np.all(np.diff(y) * np.sign(turns) > 0):
        z = (y - y[0]) * np.sign(turns)
        levels = 2 * np.pi * np.arange(1, int(abs(turns)) + 1)
        times = np.interp(levels, z, t)
        return float((times[-1] - times[0]) / (len(levels) - 1)) if len(levels) > 1 else float("nan")
    up = _crossings(y, t, 0.5 * (y.max() + y.min()))
    return float(np.mean(np.diff(up))) if len(up) >= 2 else float("nan")


def period(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """Period (and amplitude) of each rollout's first component against the exact T(E) of its first state: the
    backbone curve of the pendulum and the Duffing oscillator."""
    measured = np.array([measured_period(y, time) for y in states[..., 0]])
    with np.errstate(invalid="ignore"):
        exact = system.period(states[:, 0]) if np.isfinite(states[:, 0]).all() else np.full(len(states), np.nan)
        amplitude = 0.5 * (states[..., 0].max(axis=1) - states[..., 0].min(axis=1))
        return {"period": measured, "period_exact": exact, "amplitude": amplitude,
                "energy": system.invariants()["energy"](states[:, :1])[:, 0],
                "period_rel_error": np.abs(measured / exact - 1)}


def kepler(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """Orbital period (the time the polar angle takes per turn) against 2π√(a³/μ) of the first state,
    periapsis precession per orbit (the turn of the Laplace–Runge–Lenz vector), and the largest relative drift
    of the energy and the angular momentum."""
    from simulators.kepler import elements

    angle = np.unwrap(np.arctan2(states[..., 1], states[..., 0]), axis=1)
    measured = np.array([measured_period(a, time) for a in angle])
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = elements(states[:, 0], system.gravitational_parameter)["period"]
        lrl = system.lrl(states)
        turn = np.angle(np.exp(1j * (np.arctan2(lrl[:, -1, 1], lrl[:, -1, 0]) - np.arctan2(lrl[:, 0, 1], lrl[:, 0, 0]))))
        orbits = (time[-1] - time[0]) / exact
        out = {"period": measured, "period_exact": exact, "period_rel_error": np.abs(measured / exact - 1),
               "precession_per_orbit": np.abs(turn) / orbits}
        for name in ("energy", "angular_momentum"):
            out[f"{name}_drift"] = _drift(system.invariants()[name](states))
    return out


def _drift(values: np.ndarray) -> np.ndarray:
    """The largest relative change of a quantity along each trajectory (n_traj, n_steps) -> (n_traj,)."""
    return np.max(np.abs(values - values[:, :1]), axis=1) / np.abs(values[:, 0])


def peak_height(y: np.ndarray) -> float:
    """The mean height of the local maxima of a sampled signal, each refined by the parabola through it and its
    neighbours (an O(Δt³) error instead of the O(Δt²) of the largest sample). NaN without a maximum."""
    i = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])) + 1
    if not np.isfinite(y).all() or i.size == 0:
        return float("nan")
    a, b, c = y[i - 1], y[i], y[i + 1]
    curve = a - 2 * b + c
    return float(np.mean(b - 0.125 * (c - a) ** 2 / np.where(curve != 0, curve, -1.0)))


def limit_cycle(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """Amplitude (the mean refined maximum of x) and period of the last ``steady_fraction`` of each rollout,
    against the limit cycle of each trajectory's μ from the reference integrator."""
    start = steady_start(time, steady_fraction)
    x = states[:, start:, 0]
    ref_amp, ref_period = system.limit_cycle()
    amp = np.array([peak_height(y) for y in x])
    per = np.array([measured_period(y, time[start:]) for y in x])
    with np.errstate(invalid="ignore"):
        return {"amplitude": amp, "period": per, "amplitude_exact": ref_amp, "period_exact": ref_period,
                "amplitude_rel_error": np.abs(amp / ref_amp - 1), "period_rel_error": np.abs(per / ref_period - 1)}


def invariant_drift(states: np.ndarray, time: np.ndarray, system, *, steady_fraction: float) -> dict[str, np.ndarray]:
    """The largest relative drift of each conserved quantity along each rollout (Lotka–Volterra's V)."""
    with np.errstate(invalid="ignore"):
        return {f"{name}_drift": _drift(f(states)) for name, f in system.invariants().items()}


def rayleigh_error_trace(states: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """|xᵀAx/xᵀx − λmax| / |λmax| at every step, shape (n_traj, n_steps): the eigenvalue-convergence curve."""
    a = np.broadcast_to(np.asarray(matrix, float), (states.shape[0],) + states.shape[-1:] * 2)
    top = np.linalg.eigvalsh(a)[:, -1]
    rq = rayleigh_quotient(a, states)
    return np.abs(rq - top[:, None]) / np.abs(top[:, None])


@dataclass(frozen=True)
class Analysis:
    """A physical analysis of closed-loop rollouts.

    ``run(states, time, system, *, steady_fraction)`` returns per-trajectory figures; ``headlines`` maps the
    figures a summary shows (median over trajectories; every one an error, smaller is better) to their
    headings; the median hides the one start a model gets wrong, so the figures in ``worst`` are also reported
    at their worst trajectory (as ``NAME_max``). ``note`` explains the table in a report.
    """

    name: str
    run: Callable[..., dict[str, np.ndarray]]
    headlines: Mapping[str, str]
    worst: tuple[str, ...] = ()
    worst_labels: Mapping[str, str] | None = None
    note: str = ""

    @property
    def figures(self) -> tuple[str, ...]:
        """Every summary figure's key: the headlines and the worst-trajectory ones."""
        return (*self.headlines, *(f"{k}_max" for k in self.worst))

    def title(self, key: str) -> str:
        if key in self.headlines:
            return self.headlines[key]
        return (self.worst_labels or {}).get(key, key)


ANALYSES: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis) -> Analysis:
    """Add an analysis to the registry (a system names it in its ``physics_analysis``)."""
    ANALYSES[analysis.name] = analysis
    return analysis


register_analysis(Analysis(
    "decay", decay, {"damping_ratio_error": "|ζ error|", "damped_frequency_rel_error": "ω_d rel. error"},
    note="Free motion: ζ and ω_d recovered from the closed-loop rollout's maxima (log decrement), against "
         "ζ = η/(2ω0) and ω_d = ω0√(1−ζ²); median over the under-damped test trajectories (critically and "
         "over-damped motion has no maxima to count)."))
register_analysis(Analysis(
    "resonance", resonance, {"amplitude_rel_error": "amplitude rel. error", "phase_error": "phase error [rad]"},
    worst=("amplitude_rel_error",), worst_labels={"amplitude_rel_error_max": "amplitude rel. error (worst Ω)"},
    note="Driven motion: amplitude and phase lag at Ω fitted by least squares on the last {steady:.0%} of the "
         "closed-loop rollout, against F0/√((ω0²−Ω²)²+(ηΩ)²) and atan2(ηΩ, ω0²−Ω²); median over the test "
         "trajectories, and the worst of them (usually at the resonance)."))
register_analysis(Analysis(
    "eigen", eigen, {"eigenvalue_rel_error": "eigenvalue rel. error", "eigenvector_angle": "eigenvector angle [rad]",
                     "norm_drift": "norm drift"},
    worst=("eigenvalue_rel_error",), worst_labels={"eigenvalue_rel_error_max": "eigenvalue rel. error (worst start)"},
    note="Eigen flow: the Rayleigh quotient xᵀAx/xᵀx of each rollout's last state against λmax of the flow's "
         "matrix from numpy.linalg.eigh (relative error; for a flow of −A this is λmin(A) = −λmax(−A)), the "
         "angle to the eigenvector and the largest relative drift of ‖x‖ (conserved exactly by the flow); "
         "median over the test starts, and the worst start."))


register_analysis(Analysis(
    "period", period, {"period_rel_error": "period rel. error"}, worst=("period_rel_error",),
    worst_labels={"period_rel_error_max": "period rel. error (worst start)"},
    note="Free motion: the period of the closed-loop rollout (spacing of its mid-level crossings, or the time per "
         "turn of a rotating pendulum) against the exact T(E) of its first state (4K(k²)/ω0 for the pendulum, "
         "the elliptic period for the Duffing oscillator): the backbone curve; median and worst over the test "
         "starts."))
register_analysis(Analysis(
    "kepler", kepler, {"period_rel_error": "period rel. error", "precession_per_orbit": "precession / orbit [rad]",
                       "energy_drift": "energy drift", "angular_momentum_drift": "ang. momentum drift"},
    worst=("energy_drift",), worst_labels={"energy_drift_max": "energy drift (worst orbit)"},
    note="Kepler orbits: the period (time per turn of the polar angle) against 2π√(a³/μ), the spurious turn of the "
         "Laplace–Runge–Lenz vector per orbit (exactly zero), and the largest relative drift of the energy and "
         "the angular momentum along the rollout; median over the test orbits."))
register_analysis(Analysis(
    "limit_cycle", limit_cycle, {"amplitude_rel_error": "amplitude rel. error",
                                 "period_rel_error": "period rel. error"},
    worst=("amplitude_rel_error",), worst_labels={"amplitude_rel_error_max": "amplitude rel. error (worst start)"},
    note="Van der Pol: amplitude (mean of the maxima of x, each refined by a parabola) and period (mean spacing of "
         "upward mid-level crossings) on the last {steady:.0%} of the rollout, against the limit cycle of each "
         "μ from the reference integrator (its maxima located as events); median and worst over the test "
         "starts."))
register_analysis(Analysis(
    "invariant_drift", invariant_drift, {"V_drift": "drift of V"},
    worst=("V_drift",), worst_labels={"V_drift_max": "drift of V (worst start)"},
    note="Lotka–Volterra: the largest relative drift of V = δx − γ ln x + βy − α ln y along the rollout "
         "(conserved exactly; the reference's own drift is its floor)."))


def analyse(kind: str | None, states: np.ndarray, time: np.ndarray, system, *,
            steady_fraction: float) -> dict[str, np.ndarray]:
    """The per-trajectory figures of analysis ``kind`` on closed-loop ``states`` (n_traj, n_steps, n_obs)."""
    if kind is None:
        return {}
    return ANALYSES[kind].run(states, time, system, steady_fraction=steady_fraction)


def headline(kind: str | None, figures: Mapping[str, Any], applies: np.ndarray | None = None) -> dict[str, float]:
    """Median over trajectories of each headline figure, and the worst of the figures in ``worst``.

    ``applies`` selects the trajectories the analysis is defined for (from the exact solution's figures, e.g.
    the under-damped ones for ``decay``); among them a diverged rollout's NaN propagates, so a failure is
    never averaged away.
    """
    if kind is None:
        return {}
    analysis = ANALYSES[kind]
    out = {}
    for key in analysis.headlines:
        values = np.asarray(figures[key], float)
        if applies is not None:
            values = values[applies]
        out[key] = float(np.median(values)) if values.size else float("nan")
        if key in analysis.worst:
            out[f"{key}_max"] = float(np.max(values)) if values.size else float("nan")
    return out


def applicable(kind: str | None, exact_figures: Mapping[str, Any]) -> np.ndarray | None:
    """Trajectories on which analysis ``kind`` gives a finite figure for the exact solution."""
    if kind is None:
        return None
    first = next(iter(ANALYSES[kind].headlines))
    return np.isfinite(np.asarray(exact_figures[first], float))
