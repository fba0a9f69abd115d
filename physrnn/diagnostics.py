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

A model with a window of w past states is a map of its whole window; on the true trajectories its history is a
function of the latest state, :math:`s_{n-\ell} = \Phi_{-\ell\Delta t}(s_n)`, so its Jacobian there is
:math:`\hat J = \sum_\ell \partial s_{n+1}/\partial s_{n-\ell} \cdot \partial\Phi_{-\ell\Delta t}/\partial s_n`, the
backward flow's Jacobian again from the variational equations. The echo-state network's memory is its reservoir:
its Jacobian is the response to its latest input with the reservoir as the true history left it. The
diagnostics need the full state observed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from simulators.integrate import flow_jacobian

__all__ = ["Diagnostics", "diagnose", "exact_step_jacobian", "match_eigenvalues", "on_trajectory_jacobian",
           "oscillator_parameters"]

#: The reference tolerances of the exact flow map's Jacobian (variational equations, DOP853).
RTOL, ATOL = 1e-12, 1e-14
#: A spectral radius counts as growth above 1 + GROWTH_TOL: a conservative map's ρ is 1 only to rounding (and a
#: float32 network's to ~1e-7), while 1e-6 per step is already e^0.1 over 10⁵ steps.
GROWTH_TOL = 1e-6


def _points_system(system, n_traj: int):
    return system.broadcast(n_traj) if system.n_traj == 1 else system


def exact_step_jacobian(system, states: np.ndarray, time: np.ndarray, steps: np.ndarray, dt: float) -> np.ndarray:
    """∂Φ_Δt/∂s at the states (n_traj, n_steps, n_state) of ``steps`` (one time each): (n_traj, n_points, n, n)."""
    system = _points_system(system, states.shape[0])
    return np.stack([flow_jacobian(system, states[:, n], time[n], dt, rtol=RTOL, atol=ATOL)[1] for n in steps],
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
            back = flow_jacobian(system, states[:, n], time[n], -lag * dt, rtol=RTOL, atol=ATOL)[1]
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
        return out


def _oscillator_readout(eigenvalues: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    omega0, eta = oscillator_parameters(eigenvalues, dt)
    return {"natural_frequency": omega0, "damping": eta}


#: Physical parameters read from a step map's eigenvalues, per system: (eigenvalues, dt) -> {parameter: values};
#: the true values are the system's parameters of the same names.
READOUTS: dict[str, Any] = {"oscillator": _oscillator_readout}


def diagnose(model, data, *, points: int = 8) -> Diagnostics:
    """The Jacobian diagnostics of ``model`` on the true trajectories of ``data`` (full observation), at
    ``points`` steps spread evenly from the first the model can take to the last."""
    if data.system is None:
        raise ValueError("diagnose needs data that carry their system (from a trajectory file or a simulation)")
    if data.n_obs != data.system.n_state:
        raise ValueError(f"the diagnostics compare Jacobians of the full state; these data observe "
                         f"{data.n_obs} of {data.system.n_state} components ({data.spec.observation})")
    if not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be a positive integer, got {points!r}")
    n_steps = data.observed.shape[1]
    first = max(model.min_context - 1, 0)
    steps = np.unique(np.linspace(first, n_steps - 2, points).round().astype(int))
    window = model.step_jacobian(data, steps)
    jac = on_trajectory_jacobian(window, data.system, data.states, data.time, steps, data.dt)
    exact = exact_step_jacobian(data.system, data.states, data.time, steps, data.dt)
    lam_exact = np.linalg.eigvals(exact)
    lam = match_eigenvalues(np.linalg.eigvals(jac), lam_exact)
    readout = READOUTS.get(data.system.system)
    parameters = readout(lam, data.dt) if readout else {}
    truth = {name: getattr(data.system, name) for name in parameters}
    return Diagnostics(model=model.kind, steps=steps, dt=data.dt, jacobian=jac, exact=exact, eigenvalues=lam,
                       exact_eigenvalues=lam_exact, parameters=parameters,
                       parameters_exact=readout(lam_exact, data.dt) if readout else {}, truth=truth)
