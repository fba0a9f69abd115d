r"""Inside the learned step map: its Jacobian along the test trajectories against the exact flow map's.

A step model is a map :math:`s_{n+1} = \hat\Phi(s_n, \dots)`. Its Jacobian :math:`\hat J = \partial s_{n+1}/\partial
s_n` at true states is compared with the exact flow map's, :math:`J = \partial\Phi_{\Delta t}/\partial s`, from the
variational equations integrated by the reference integrator (:func:`simulators.flow_jacobian`; for the linear
oscillator this is :math:`e^{M\Delta t}`):

- **the spectrum**: the eigenvalues of :math:`\hat J` paired with the exact ones, their largest distance, and the
  spectral radii; a point is *anti-damped* where :math:`\rho(\hat J) > 1` while :math:`\rho(J) \le 1` (the model
  pumps energy into motion the physics damps or conserves), beyond a tolerance for rounding;
- **physical parameters read from the map itself**, not from a rollout: for the oscillator, with
  :math:`r_{1,2} = \ln\lambda_{1,2}/\Delta t`, :math:`\eta = -(r_1 + r_2)` and :math:`\omega_0^2 = r_1 r_2` (so
  :math:`\gamma = -\ln|\lambda|/\Delta t` and :math:`\omega_d = |\arg\lambda|/\Delta t` for an under-damped pair;
  :math:`\ln|\lambda|/\Delta t` is the growth rate, where PyDMD's ``growth_rate`` reports
  :math:`\mathrm{Re}\,\lambda/\Delta t`).

- **the linearisation at the equilibria** the system declares (:meth:`~simulators.system.PhysicalSystem.equilibria`):
  the model is held at the equilibrium for its whole history and its rates :math:`r = \ln\lambda/\Delta t`
  are paired with the exact ones: the pendulum's small-oscillation frequency :math:`\omega_0`, the eigen flow's
  eigenvalue gaps :math:`\|x\|^2(\lambda_i - \lambda_{\max})` at :math:`\pm v_{\max}`;
- **the learned increment** :math:`g(s) = (\hat\Phi(s) - s)/\Delta t` at states along the test trajectories,
  against the exact increment :math:`(\Phi_{\Delta t}(s) - s)/\Delta t` (what a model trained on exact data
  should match) and against the vector field :math:`f(s)` (from which the exact increment differs by
  :math:`O(\Delta t)`: the floor below which matching f would be a mistake);
- **long horizons**: a closed loop of :data:`LONG_STEPS` steps from a few test starts, against the truth:
  drift of the conserved invariants, the long-time behaviour (fixed point, or a bounded orbit or cycle, and at
  what amplitude), and the time to divergence;
- **error growth**: the exponent of the rollout error's growth, :math:`e(t) \propto e^{\hat\lambda t}` fitted
  until the error reaches the valid-time level, beside the exact system's largest Lyapunov exponent (Benettin's
  method on the reference: :math:`\max\mathrm{Re}\,\lambda(M)` for the linear oscillator, 0 for a regular
  orbit, positive on a chaotic one).

A model with a window of w past states is a map of its whole window; on the true trajectories its history is a
function of the latest state, :math:`s_{n-\ell} = \Phi_{-\ell\Delta t}(s_n)`, so its Jacobian there is
:math:`\hat J = \sum_\ell \partial s_{n+1}/\partial s_{n-\ell} \cdot \partial\Phi_{-\ell\Delta t}/\partial s_n`, the
backward flow's Jacobian again from the variational equations. The echo-state network's memory is its reservoir:
its Jacobian is the response to its latest input with the reservoir as the true history left it. The
diagnostics need the full state observed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from simulators.integrate import flow_jacobian, lyapunov_exponent, solve
from simulators.trajectory_file import Trajectories

__all__ = ["READOUTS", "READOUT_PARAMETERS", "Diagnostics", "ErrorGrowth", "Increments", "Linearisation", "LongHorizon",
           "diagnose", "envelope_exponent", "error_growth", "exact_exponents", "growth_class", "exact_step_jacobian", "increments", "linearise",
           "long_horizon", "long_truth", "match_eigenvalues", "on_trajectory_jacobian", "one_step",
           "oscillator_parameters", "target_figures", "target_value"]

#: A spectral radius counts as growth above 1 + GROWTH_TOL: a conservative map's ρ is 1 only to rounding (and a
#: float32 network's to ~1e-7), while 1e-6 per step is already e^0.1 over 10⁵ steps.
GROWTH_TOL = 1e-6


def _points_system(system, n_traj: int):
    return system.broadcast(n_traj) if system.n_traj == 1 else system


def exact_step_jacobian(system, states: np.ndarray, time: np.ndarray, steps: np.ndarray, dt: float) -> np.ndarray:
    """∂Φ_Δt/∂s at the states (n_traj, n_steps, n_state) of ``steps`` (one time each): (n_traj, n_points, n, n),
    from the variational equations at the reference tolerances (:func:`simulators.flow_jacobian`'s defaults)."""
    system = _points_system(system, states.shape[0])
    return np.stack([flow_jacobian(system, states[:, n], time[n], dt)[1] for n in steps],
                    axis=1)


def on_trajectory_jacobian(window_jacobian: np.ndarray, system, states: np.ndarray, time: np.ndarray,
                           steps: np.ndarray, dt: float) -> np.ndarray:
    r"""A windowed model's Jacobian on the true trajectories: :math:`\sum_\ell W_\ell\, \partial\Phi_{-\ell\Delta t}
    /\partial s_n`, with ``window_jacobian`` (n_traj, n_points, window, n, n) from
    :meth:`~physrnn.models.base.StepModel.step_jacobian` (position window − 1 is lag 0)."""
    window = window_jacobian.shape[2]
    out = window_jacobian[:, :, -1].copy()
    if window == 1:
        return out
    system = _points_system(system, states.shape[0])
    for i, n in enumerate(steps):
        for lag in range(1, window):
            back = flow_jacobian(system, states[:, n], time[n], -lag * dt)[1]
            out[:, i] += window_jacobian[:, i, window - 1 - lag] @ back
    return out


def match_eigenvalues(learned: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The eigenvalues ``learned`` (..., n) reordered to pair with ``exact`` (..., n): the assignment of least
    total distance (a pair of complex conjugates is matched by sign of its imaginary part)."""
    out = np.empty_like(learned)
    flat_l, flat_e, flat_o = (a.reshape(-1, a.shape[-1]) for a in (learned, exact, out))
    for i, (lam, ref) in enumerate(zip(flat_l, flat_e)):
        rows, cols = linear_sum_assignment(np.abs(ref[:, None] - lam[None, :]))
        flat_o[i, rows] = lam[cols]
    return flat_o.reshape(learned.shape)


def oscillator_parameters(eigenvalues: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    r"""(ω0, η) of x'' + ηx' + ω0²x from the two eigenvalues (..., 2) of a step map: with r = ln λ/Δt (principal
    branch), η = −(r1 + r2) and ω0 = √(r1 r2); exact for e^{MΔt} whenever ω_d Δt < π."""
    r = np.log(eigenvalues.astype(complex)) / dt
    with np.errstate(invalid="ignore"):  # r1 r2 < 0: no oscillator has this map (NaN, not a made-up ω0)
        return np.sqrt(np.real(r[..., 0] * r[..., 1])), -np.real(r[..., 0] + r[..., 1])


def _rates(eigenvalues: np.ndarray, dt: float) -> np.ndarray:
    """r = ln λ / Δt (principal branch): growth rate (real part) and angular frequency (imaginary part)."""
    with np.errstate(divide="ignore"):
        return np.log(eigenvalues.astype(complex)) / dt


def _step_jacobians(model, data, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model's on-trajectory Jacobian and the exact one at ``steps``, and their paired spectra."""
    window = model.step_jacobian(data, steps)
    jac = on_trajectory_jacobian(window, data.system, data.states, data.time, steps, data.dt)
    exact = exact_step_jacobian(data.system, data.states, data.time, steps, data.dt)
    lam_exact = np.linalg.eigvals(exact)
    return jac, exact, match_eigenvalues(np.linalg.eigvals(jac), lam_exact), lam_exact


# ------------------------------------------------------------------------------------------ equilibria
#: Steps a model is held at an equilibrium before it is linearised there (beyond its minimum context): an
#: echo-state reservoir forgets its start as ρ^n, 0.9^100 ≈ 3e-5.
SETTLE_STEPS = 100


@dataclass(frozen=True, eq=False)
class Linearisation:
    """A model's step map linearised at one equilibrium, against the exact flow map's there.

    ``rates`` and ``exact_rates`` (n_points, n_state), complex: r = ln λ/Δt of each eigenvalue, the model's
    paired with the exact ones (real part: growth rate; imaginary part: angular frequency). ``trajectories``:
    the test trajectories whose parameters have this equilibrium (one point each).
    """

    label: str
    trajectories: np.ndarray
    rates: np.ndarray
    exact_rates: np.ndarray

    @property
    def rate_error(self) -> np.ndarray:
        """max_i |r̂_i − r_i| / max_i |r_i| per point: every rate and frequency, relative to the fastest."""
        scale = np.abs(self.exact_rates).max(axis=-1)
        return np.abs(self.rates - self.exact_rates).max(axis=-1) / np.where(scale > 0, scale, 1.0)

    def summary(self) -> dict[str, Any]:
        freq, freq_exact = np.abs(self.rates.imag).max(-1), np.abs(self.exact_rates.imag).max(-1)
        growth, growth_exact = self.rates.real.max(-1), self.exact_rates.real.max(-1)
        return {"points": int(self.trajectories.size), "rate_rel_error_median": float(np.median(self.rate_error)),
                "rate_rel_error_max": float(self.rate_error.max()),
                "frequency_median": float(np.median(freq)), "frequency_exact_median": float(np.median(freq_exact)),
                "growth_rate_median": float(np.median(growth)),
                "growth_rate_exact_median": float(np.median(growth_exact)),
                "rates": [[[float(z.real), float(z.imag)] for z in row] for row in self.rates],
                "exact_rates": [[[float(z.real), float(z.imag)] for z in row] for row in self.exact_rates]}


def linearise(model, data) -> dict[str, Linearisation]:
    """The model's step map linearised at each equilibrium of ``data.system`` (where a test trajectory's
    parameters have it), its history held there for :data:`SETTLE_STEPS` steps beyond its minimum context."""
    out = {}
    length = min(data.observed.shape[1], max(model.min_context, 1) + SETTLE_STEPS + 1)
    for label, points in data.system.equilibria().items():
        rows = np.flatnonzero(~np.isnan(points).any(axis=1))
        if rows.size == 0:
            continue
        held = np.broadcast_to(points[rows][:, None, :], (rows.size, length, points.shape[1])).copy()
        sub = data.take(rows)
        at = replace(sub, observed=held, states=held, known=sub.known[:, :length], time=sub.time[:length])
        _, _, lam, lam_exact = _step_jacobians(model, at, np.array([length - 2]))
        out[label] = Linearisation(label=label, trajectories=sub.trajectories, rates=_rates(lam[:, 0], data.dt),
                                   exact_rates=_rates(lam_exact[:, 0], data.dt))
    return out


# ------------------------------------------------------------------------------------------ increments
def one_step(model, data, steps) -> np.ndarray:
    """Φ̂(s_n): the model's next state from the true history up to each of ``steps``, (n_traj, n_points, n_obs)
    (a one-step closed loop from context n + 1, so any model that rolls out gives it)."""
    steps = np.atleast_1d(np.asarray(steps, dtype=int))
    out = np.empty((data.n_traj, steps.size, data.n_obs))
    for i, n in enumerate(steps):
        out[:, i] = model.rollout(data, context=n + 1, n_steps=n + 2, bound=np.inf).observed[:, n + 1]
    return out


@dataclass(frozen=True, eq=False)
class Increments:
    """The learned increment g(s) = (Φ̂(s) − s)/Δt at states ``states`` (n_traj, n_points, n_state) of the test
    trajectories, against the exact increment (Φ_Δt(s) − s)/Δt and the vector field f(s)."""

    steps: np.ndarray
    states: np.ndarray
    learned: np.ndarray
    exact: np.ndarray
    field: np.ndarray

    @property
    def scale(self) -> float:
        """The RMS norm of the exact increment over every point: what the errors are relative to."""
        return float(np.sqrt(np.mean(np.sum(self.exact**2, axis=-1)))) or 1.0

    @property
    def error(self) -> np.ndarray:
        """‖g − exact increment‖ / scale per point (n_traj, n_points): the model's error."""
        return np.linalg.norm(self.learned - self.exact, axis=-1) / self.scale

    @property
    def field_gap(self) -> np.ndarray:
        """‖g − f‖ / scale per point: how far the model is from the vector field itself."""
        return np.linalg.norm(self.learned - self.field, axis=-1) / self.scale

    @property
    def floor(self) -> np.ndarray:
        """‖exact increment − f‖ / scale per point: O(Δt), what a perfect step map differs from f by."""
        return np.linalg.norm(self.exact - self.field, axis=-1) / self.scale

    def summary(self) -> dict[str, Any]:
        return {"points": int(self.error.size), "error_median": float(np.median(self.error)),
                "error_max": float(np.max(self.error)), "field_gap_median": float(np.median(self.field_gap)),
                "floor_median": float(np.median(self.floor)),
                # the map: the first two state components of each point, and the two differences
                "map": {"x": self.states[..., 0].ravel().tolist(),
                        "y": self.states[..., min(1, self.states.shape[-1] - 1)].ravel().tolist(),
                        "error": self.error.ravel().tolist(), "floor": self.floor.ravel().tolist()}}


def _truth(system, x0: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, str]:
    """The true states from ``x0`` on ``time`` and how they were computed: the closed form where the system has
    one, else the reference integrator."""
    try:
        return system.exact(x0, time), "exact"
    except ValueError:  # no closed form
        return solve(system, x0, time, method="reference"), "reference"


def _true_step(system, state: np.ndarray, t: float, dt: float) -> np.ndarray:
    """The exact flow map over one step from ``state`` at ``t``. The data's own next state is not it where the
    data carry an integrator's error (SciPy RK23's)."""
    return _truth(system, state, np.array([t, t + dt]))[0][:, 1]


def increments(model, data, steps) -> Increments:
    """The learned and exact increments and the vector field at ``steps`` of the true trajectories."""
    steps = np.atleast_1d(np.asarray(steps, dtype=int))
    s = data.states[:, steps]
    field_ = np.stack([data.system.rhs(data.time[n], data.states[:, n]) for n in steps], axis=1)
    exact = np.stack([_true_step(data.system, data.states[:, n], data.time[n], data.dt) for n in steps], axis=1)
    exact = (exact - s) / data.dt
    learned = (one_step(model, data, steps) - s) / data.dt
    return Increments(steps=steps, states=s, learned=learned, exact=exact, field=field_)


# ------------------------------------------------------------------------------------------ long horizons
#: Closed-loop steps of the long-horizon runs, and how many test starts they run from.
LONG_STEPS, LONG_STARTS = 100_000, 3
#: The last fraction of a long run whose amplitude tells the long-time behaviour.
LATE_FRACTION = 0.1
#: A late spread (max − min of a component) below this fraction of the true scale counts as a fixed point.
FIXED_POINT_TOL = 1e-3


def long_truth(data, *, n_steps: int = LONG_STEPS, starts: int = LONG_STARTS):
    """Test data for the long runs: the truth over ``n_steps`` steps from ``starts`` test starts spread over the
    set (the closed form where the system has one, else the reference integrator), as StepData."""
    if not isinstance(n_steps, int) or n_steps < 3 or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"the long runs need n_steps >= 3 and starts >= 1 (integers), got {n_steps!r}, {starts!r}")
    index = np.unique(np.linspace(0, data.n_traj - 1, min(starts, data.n_traj)).round().astype(int))
    system = data.system.take(index)
    time = data.time[0] + data.dt * np.arange(n_steps)
    x0 = data.states[index, 0]
    states, method = _truth(system, x0, time)
    tr = Trajectories(system=system.system, time=time, states=states, params=system.params(),
                      state_names=tuple(system.state_names), state_units=tuple(system.state_units), method=method,
                      drive=system.drive(time) if system.is_driven else None, drive_names=system.drive_names())
    from .data import build_step_data

    out = build_step_data(tr, data.spec)
    return replace(out, trajectories=data.trajectories[index])


def _behaviour(late: np.ndarray, scale: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    spread = (late.max(axis=1) - late.min(axis=1)).max(axis=-1)
    return np.where(diverged, "diverged", np.where(spread <= FIXED_POINT_TOL * scale, "fixed point", "bounded"))


@dataclass(frozen=True, eq=False)
class LongHorizon:
    """A closed loop of many steps from a few test starts, against the truth (see :func:`long_truth`)."""

    steps: int
    time: np.ndarray
    diverged_at: np.ndarray
    drift: dict[str, np.ndarray]
    drift_exact: dict[str, np.ndarray]
    #: Per conserved invariant: the envelope exponent α of its error per start (:func:`envelope_exponent`).
    growth: dict[str, np.ndarray]
    growth_exact: dict[str, np.ndarray]
    late_amplitude_error: np.ndarray
    behaviour: np.ndarray
    behaviour_exact: np.ndarray

    def summary(self) -> dict[str, Any]:
        diverged = self.diverged_at >= 0
        out: dict[str, Any] = {
            "steps": self.steps, "starts": int(self.diverged_at.size), "diverged": int(diverged.sum()),
            "divergence_time_median": (float(np.median(self.time[self.diverged_at[diverged]] - self.time[0]))
                                       if diverged.any() else None),
            "late_amplitude_error_median": float(np.median(self.late_amplitude_error)),
            "behaviour": self.behaviour.tolist(), "behaviour_exact": self.behaviour_exact.tolist(),
            "behaviour_right": int((self.behaviour == self.behaviour_exact).sum())}
        for name, values in self.drift.items():
            out[f"{name}_drift_median"] = float(np.median(values))
            out[f"{name}_drift_exact"] = float(np.median(self.drift_exact[name]))
            exponent = self.growth[name]
            # The worst start's exponent (a diverged start: None), and every start's class.
            out[f"{name}_growth_exponent"] = None if np.isnan(exponent).any() else float(exponent.max())
            out[f"{name}_growth_exponent_exact"] = float(np.nanmax(self.growth_exact[name]))
            out[f"{name}_growth"] = growth_class(exponent).tolist()
        return out


def _relative_change(invariant, states: np.ndarray, diverged_at: np.ndarray) -> np.ndarray:
    """|I(t) − I(0)| / |I(0)| per trajectory and step, (n_traj, n_steps): inf where I is not finite before the
    trajectory's divergence (a state outside the invariant's domain, such as a negative population under V's
    logarithms), NaN from its divergence on."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = invariant(states)
    n = values.shape[1]
    end = np.where(diverged_at >= 0, diverged_at, n)
    valid = np.arange(n)[None, :] < end[:, None]
    ref = np.abs(values[:, :1])
    with np.errstate(invalid="ignore"):
        change = np.abs(values - values[:, :1]) / np.where(ref > 0, ref, 1.0)
    return np.where(valid, np.where(np.isfinite(change), change, np.inf), np.nan)


def _peak(change: np.ndarray) -> np.ndarray:
    """The largest change per trajectory before its divergence (NaN marks the steps after it)."""
    return np.where(np.isnan(change), 0.0, change).max(axis=1)


#: The envelope of an invariant's error is read over this many blocks of a long run, spaced evenly in log t from
#: ENVELOPE_START of the run to its end (the first block already spans many periods of the motion).
ENVELOPE_BLOCKS, ENVELOPE_START = 16, 0.01
#: The estimator's floor: an envelope growing as t^α with α above it is secular growth; at or below it, bounded.
#: On bounded errors (a sum of incommensurate oscillations, a symplectic integrator's energy error, rounding
#: noise) the estimator reads |α| < 0.05 over 10⁵ steps; a random walk reads 0.5, a steady drift 1.
GROWTH_FLOOR = 0.1
#: Invariant errors below this (relative) are rounding, whose growth is no model's: the exact solution's energy
#: error is ~1e-15 of E and its envelope reads α ≈ 0.09 as extreme values of noise do; the least-squares linear
#: map of an undamped oscillator (exact to ~1e-14) drifts 4e-13 over 2 × 10⁴ steps. Learned maps err above 1e-8.
INVARIANT_ROUNDING = 1e-10


def envelope_exponent(time: np.ndarray, error: np.ndarray) -> np.ndarray:
    """α of the envelope of ``error`` (n_traj, n_steps) ∝ (t − t0)^α, per trajectory: the least-squares slope of
    ln(max of the error over each of :data:`ENVELOPE_BLOCKS` log-spaced blocks) against ln(the block's end time).
    An envelope below :data:`INVARIANT_ROUNDING` reads as that floor: rounding-level errors read 0. NaN where a
    trajectory has NaN (diverged) or infinite error."""
    t = time - time[0]
    edges = np.geomspace(ENVELOPE_START * t[-1], t[-1], ENVELOPE_BLOCKS + 1)
    index = np.searchsorted(t, edges)
    index[-1] = t.size
    envelope = np.stack([error[:, a:b].max(axis=1) for a, b in zip(index[:-1], index[1:])], axis=1)
    finite = np.isfinite(error).all(axis=1)
    log_e = np.log(np.maximum(np.where(finite[:, None], envelope, 1.0), INVARIANT_ROUNDING))
    slope = np.polyfit(np.log(t[index[1:] - 1]), log_e.T, 1)[0]
    return np.where(finite, slope, np.nan)


def growth_class(exponent: np.ndarray) -> np.ndarray:
    """"bounded" (α ≤ :data:`GROWTH_FLOOR`), "secular" (above it) or "diverged" (NaN), per trajectory."""
    return np.where(np.isnan(exponent), "diverged", np.where(exponent <= GROWTH_FLOOR, "bounded", "secular"))


def long_horizon(model, long) -> LongHorizon:
    """The model's closed loop over the whole of ``long`` (from :func:`long_truth`), judged against it: the
    relative drift of each invariant the system conserves (model and truth), the late amplitude error (each
    component's max |s| over the last :data:`LATE_FRACTION`, relative to the truth's largest |s|, worst
    component; NaN where diverged), the behaviour there (``fixed point``, ``bounded`` or ``diverged``) and the
    step of divergence."""
    roll = model.rollout(long, context=max(model.min_context, 1))
    pred, true, system = roll.observed, long.states, long.system
    keep = system.conserves_invariants()
    drift, drift_exact, growth, growth_exact = {}, {}, {}, {}
    if keep.any():
        rows = np.flatnonzero(keep)
        never = -np.ones(rows.size, dtype=int)
        for name, f in system.take(rows).invariants().items():
            change = _relative_change(f, pred[rows], roll.diverged_at[rows])
            change_exact = _relative_change(f, true[rows], never)
            drift[name], drift_exact[name] = _peak(change), _peak(change_exact)
            growth[name] = envelope_exponent(long.time, change)
            growth_exact[name] = envelope_exponent(long.time, change_exact)
    late = slice(int(true.shape[1] * (1 - LATE_FRACTION)), None)
    scale = np.abs(true).max(axis=(1, 2))
    amp = np.abs(pred[:, late]).max(axis=1)
    amp_true = np.abs(true[:, late]).max(axis=1)
    with np.errstate(invalid="ignore"):
        late_error = np.abs(amp - amp_true).max(axis=-1) / scale
    return LongHorizon(steps=int(true.shape[1]), time=long.time, diverged_at=roll.diverged_at, drift=drift,
                       drift_exact=drift_exact, growth=growth, growth_exact=growth_exact,
                       late_amplitude_error=late_error,
                       behaviour=_behaviour(pred[:, late], scale, roll.diverged),
                       behaviour_exact=_behaviour(true[:, late], scale, np.zeros(true.shape[0], bool)))


# ------------------------------------------------------------------------------------------ error growth
@dataclass(frozen=True, eq=False)
class ErrorGrowth:
    """The fitted exponent of a rollout's error growth per test trajectory, and the exact system's largest
    Lyapunov exponent from the same starts."""

    exponent: np.ndarray
    lyapunov_exponent: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"exponent_median": float(np.nanmedian(self.exponent)) if np.isfinite(self.exponent).any() else None,
                "lyapunov_exponent_median": float(np.median(self.lyapunov_exponent))}


#: Fewest error samples an exponent is fitted to.
GROWTH_MIN_POINTS = 10
#: Errors below this fraction of the true signal's largest |s| are rounding, whose growth is no model's: a
#: float64 map exact to 1e-15 would otherwise be read as growing at the rate its rounding noise random-walks.
ROUNDING_FLOOR = 1e-12


def error_growth(rollout, data, *, fraction: float = 0.1, lyapunov=None) -> ErrorGrowth:
    r"""Least-squares slope of :math:`\ln\lVert e(t)
Vert` against t over the closed loop, per trajectory,
    until the error first exceeds ``fraction`` of the true signal's range (the valid-time level: beyond it
    the error saturates), from samples above the rounding level (:data:`ROUNDING_FLOOR`); NaN with fewer than
    :data:`GROWTH_MIN_POINTS` samples. ``lyapunov``: the exact
    exponents per trajectory (:func:`exact_exponents` from the rollout's start when not given)."""
    from .metrics import beyond_valid

    c = rollout.context
    n = rollout.observed.shape[1]
    pred, true, t = rollout.observed[:, c:], data.observed[:, c:n], rollout.time[c:]
    bad = beyond_valid(true=true, pred=pred, fraction=fraction)
    err = np.linalg.norm(pred - true, axis=-1)
    floor = ROUNDING_FLOOR * np.abs(true).max(axis=(1, 2))
    exponent = np.full(pred.shape[0], np.nan)
    for j in range(pred.shape[0]):
        end = int(np.argmax(bad[j])) if bad[j].any() else t.size
        ok = np.flatnonzero(err[j, :end] > floor[j])
        if ok.size >= GROWTH_MIN_POINTS:
            exponent[j] = np.polyfit(t[ok], np.log(err[j, ok]), 1)[0]
    if lyapunov is None:
        lyapunov = exact_exponents(data, c)
    return ErrorGrowth(exponent=exponent, lyapunov_exponent=np.asarray(lyapunov, dtype=float))


def exact_exponents(data, context: int) -> np.ndarray:
    """The exact system's largest Lyapunov exponent from each trajectory's state at step ``context``, by
    Benettin's method on the reference: over 200 periods where the system may be chaotic (the estimate valid
    Lyapunov times use), else over the rest of the horizon. The same for every model closing its loop there,
    so a study computes it once per context (:func:`error_growth` takes it as ``lyapunov``)."""
    from .metrics import attractor_exponent

    c = context
    if data.system.may_be_chaotic():  # the estimate the valid Lyapunov times use (200 periods, cached)
        return attractor_exponent(data.system, data.states[:, c], data.time[c]).exponent
    # A regular orbit: over the test horizon (its ln T/T bias is what this horizon can tell apart).
    return lyapunov_exponent(data.system, data.states[:, c], data.time[c],
                             duration=float(data.time[-1] - data.time[c])).exponent


@dataclass(frozen=True, eq=False)
class Diagnostics:
    """The step Jacobians of one model at points along the test trajectories, against the exact flow map's.

    Attributes
    ----------
    model : str
    steps : ndarray of int, shape (n_points,)
        The steps n of the test trajectories where s_{n+1} = Φ̂(s_n) is linearised.
    jacobian, exact : ndarray of shape (n_traj, n_points, n_state, n_state)
        The model's Jacobian on the true trajectories and the exact flow map's.
    eigenvalues, exact_eigenvalues : ndarray of complex, shape (n_traj, n_points, n_state)
        Their spectra, the model's paired with the exact one.
    parameters : dict of str to ndarray
        Physical parameters read from the model's Jacobian (the oscillator: ω0 and η), per point; and
        ``parameters_exact``: the same estimator on the exact Jacobian (its floor).
    equilibria : dict of str to Linearisation
        The map linearised at each equilibrium of the system (:func:`linearise`).
    increments : Increments or None
        The learned increment against the exact one and the vector field (:func:`increments`).
    long_horizon : LongHorizon or None
        The long closed loop (:func:`long_horizon`); None when not asked for.
    growth : ErrorGrowth or None
        The error-growth exponent of the test rollout (:func:`error_growth`).
    """

    model: str
    steps: np.ndarray
    dt: float
    jacobian: np.ndarray
    exact: np.ndarray
    eigenvalues: np.ndarray
    exact_eigenvalues: np.ndarray
    parameters: dict[str, np.ndarray] = field(default_factory=dict)
    parameters_exact: dict[str, np.ndarray] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    equilibria: dict[str, Linearisation] = field(default_factory=dict)
    increments: Increments | None = None
    long_horizon: LongHorizon | None = None
    growth: ErrorGrowth | None = None

    @property
    def eigenvalue_error(self) -> np.ndarray:
        """max_i |λ̂_i − λ_i| per point, (n_traj, n_points)."""
        return np.abs(self.eigenvalues - self.exact_eigenvalues).max(axis=-1)

    @property
    def spectral_radius(self) -> np.ndarray:
        return np.abs(self.eigenvalues).max(axis=-1)

    @property
    def exact_spectral_radius(self) -> np.ndarray:
        return np.abs(self.exact_eigenvalues).max(axis=-1)

    @property
    def anti_damping(self) -> np.ndarray:
        """Where the model's map grows (spectral radius above 1 + :data:`GROWTH_TOL`) while the exact one does
        not (at most 1 + :data:`GROWTH_TOL`: damped, or conservative), (n_traj, n_points)."""
        return (self.spectral_radius > 1 + GROWTH_TOL) & (self.exact_spectral_radius <= 1 + GROWTH_TOL)

    def summary(self) -> dict[str, Any]:
        """Medians and worst cases over every point; each parameter's relative error against the truth."""
        err = self.eigenvalue_error
        out: dict[str, Any] = {
            "model": self.model, "points": int(err.size),
            "eigenvalue_error_median": float(np.median(err)), "eigenvalue_error_max": float(err.max()),
            "spectral_radius_error_median": float(np.median(np.abs(self.spectral_radius
                                                                   - self.exact_spectral_radius))),
            "anti_damped_points": int(self.anti_damping.sum())}
        for name, values in self.parameters.items():
            true = self.truth[name]
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(values / true[:, None] - 1)
                floor = np.abs(self.parameters_exact[name] / true[:, None] - 1)
            out[f"{name}_rel_error_median"] = float(np.median(rel))
            out[f"{name}_rel_error_floor"] = float(np.median(floor))
        if self.parameters:  # per trajectory (median over its points), for the figure against the inputs
            out["per_trajectory"] = {name: np.median(values, axis=1).tolist()
                                     for name, values in self.parameters.items()}
            out["per_trajectory_truth"] = {name: np.asarray(v, float).tolist() for name, v in self.truth.items()}
        if self.equilibria:
            out["equilibria"] = {label: lin.summary() for label, lin in self.equilibria.items()}
        for name in ("increments", "long_horizon", "growth"):
            part = getattr(self, name)
            if part is not None:
                out[name] = part.summary()
        return out


def _oscillator_readout(eigenvalues: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    omega0, eta = oscillator_parameters(eigenvalues, dt)
    return {"natural_frequency": omega0, "damping": eta}


#: Physical parameters read from a step map's eigenvalues, per system: (eigenvalues, dt) -> {parameter: values};
#: the true values are the system's parameters of the same names.
READOUTS: dict[str, Any] = {"oscillator": _oscillator_readout}
#: The parameters each readout gives (what a study's [targets] may bound as ``NAME_rel_error``).
READOUT_PARAMETERS: dict[str, tuple[str, ...]] = {"oscillator": ("natural_frequency", "damping")}


def target_figures(system=None, observed: tuple[str, ...] | None = None) -> dict[str, str]:
    """The diagnostics a study's [targets] may bound (each the median over points of a model's seed, smaller
    better): ``eigenvalue_error`` and each read-out parameter's ``NAME_rel_error``; for ``system`` observed as
    ``observed``, only those it computes (none without the full state), else every one of every system."""
    if system is None:
        names = {n for params in READOUT_PARAMETERS.values() for n in params}
    elif observed is None or tuple(observed) != tuple(system.state_names):
        return {}
    else:
        names = set(READOUT_PARAMETERS.get(system.system, ()))
    return {"eigenvalue_error": "min", **{f"{n}_rel_error": "min" for n in sorted(names)}}


def target_value(diagnostics: dict[str, Any], figure: str) -> float | None:
    """A :func:`target_figures` figure from a run's diagnostics summary (None if it has none)."""
    value = diagnostics.get(f"{figure}_median")
    return None if value is None else float(value)


def diagnose(model, data, *, points: int = 8, increment_points: int = 16, long_steps: int = LONG_STEPS,
             long=None, rollout=None, lyapunov=None, valid_fraction: float = 0.1) -> Diagnostics:
    """Every diagnostic of ``model`` on the true trajectories of ``data`` (full observation).

    The step Jacobian at ``points`` steps spread evenly from the first the model can take to the last; the
    linearisation at the system's equilibria; the increments at ``increment_points`` steps; the long closed loop
    over ``long_steps`` steps from :data:`LONG_STARTS` test starts (0: none; ``long``: the data of
    :func:`long_truth`, built once for many models); the error growth of ``rollout`` (the model's closed loop on
    ``data``, rolled out here if not given) against the exact exponents ``lyapunov`` (computed if not given).
    """
    if data.system is None:
        raise ValueError("diagnose needs data that carry their system (from a trajectory file or a simulation)")
    if data.n_obs != data.system.n_state:
        raise ValueError(f"the diagnostics compare Jacobians of the full state; these data observe "
                         f"{data.n_obs} of {data.system.n_state} components ({data.spec.observation})")
    for name, value in (("points", points), ("increment_points", increment_points)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(long_steps, int) or long_steps < 0:
        raise ValueError(f"long_steps must be a non-negative integer (0: no long run), got {long_steps!r}")
    n_steps = data.observed.shape[1]
    first = max(model.min_context - 1, 0)

    def spread(k: int) -> np.ndarray:
        return np.unique(np.linspace(first, n_steps - 2, k).round().astype(int))

    steps = spread(points)
    jac, exact, lam, lam_exact = _step_jacobians(model, data, steps)
    readout = READOUTS.get(data.system.system)
    parameters = readout(lam, data.dt) if readout else {}
    truth = {name: getattr(data.system, name) for name in parameters}
    if long is None and long_steps:
        long = long_truth(data, n_steps=long_steps)
    if rollout is None:
        rollout = model.rollout(data)
    return Diagnostics(model=model.kind, steps=steps, dt=data.dt, jacobian=jac, exact=exact, eigenvalues=lam,
                       exact_eigenvalues=lam_exact, parameters=parameters,
                       parameters_exact=readout(lam_exact, data.dt) if readout else {}, truth=truth,
                       equilibria=linearise(model, data), increments=increments(model, data, spread(increment_points)),
                       long_horizon=long_horizon(model, long) if long is not None else None,
                       growth=error_growth(rollout, data, fraction=valid_fraction, lyapunov=lyapunov))
