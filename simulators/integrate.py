"""One entry point for every solution of a system: exact, explicit Euler, classical RK4, or a reference integrator.

All methods share one signature and one layout, so a numerical solution and the closed form can stand in
for each other, and every closed form is a test oracle for the integrators:

>>> from simulators import LinearOscillator, solve
>>> osc = LinearOscillator(damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
>>> t = np.arange(2001) * 0.05
>>> exact = solve(osc, [[0.7, -0.3]], t)                 # (1, 2001, 2)
>>> rk4 = solve(osc, [[0.7, -0.3]], t, method="rk4")

The fixed-step methods advance the whole ensemble at once (a loop over time steps, vectorised over
trajectories). ``substeps`` subdivides each interval of ``time``; the output is always at ``time``.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import solve_ivp

from ._validation import check_bounds, check_time_grid

__all__ = ["METHODS", "REFERENCE_ATOL", "REFERENCE_RTOL", "LyapunovEstimate", "System", "euler_step", "flow_jacobian",
           "lyapunov_exponent", "rk4_step", "solve"]

METHODS = ("exact", "euler", "rk4", "reference", "rk23")
#: The reference integrator's default tolerances, met by every component of every trajectory (one pair for
#: ``solve`` and for ensemble configs alike).
REFERENCE_RTOL = 1e-12
REFERENCE_ATOL = 1e-14


class System(Protocol):
    """What :func:`solve` needs of a system (every :class:`~simulators.system.PhysicalSystem` has it)."""

    system: str
    n_traj: int
    n_state: int

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray: ...

    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray: ...

    def broadcast(self, n_traj: int) -> "System": ...

    def reference_method(self) -> str: ...


def solve(
    system: System,
    initial_state: ArrayLike,
    time: ArrayLike,
    *,
    method: str = "exact",
    substeps: int = 1,
    rtol: float = REFERENCE_RTOL,
    atol: float = REFERENCE_ATOL,
) -> np.ndarray:
    """States of an ensemble at the given times.

    Parameters
    ----------
    system : PhysicalSystem
        Any registered system (:mod:`simulators.system`), with one set of parameters or one per trajectory.
    initial_state : ndarray of shape (n_traj, n_state)
        States at ``time[0]``.
    time : ndarray of shape (n_steps,)
        Strictly increasing output times (need not be uniform).
    method : {"exact", "euler", "rk4", "reference", "rk23"}
        ``"exact"``: the closed form. ``"euler"``: explicit Euler, the update the networks imitate.
        ``"rk4"``: classical fourth-order Runge–Kutta. ``"reference"``: adaptive DOP853 (SciPy; Radau where the
        system says it is stiff) with tolerances ``rtol``/``atol`` met by every component of every trajectory
        (see Notes). ``"rk23"``: SciPy's adaptive RK23 at its own default tolerances (rtol 1e-3, atol 1e-6),
        one trajectory at a time, as papers that call ``solve_ivp(method="RK23")`` made their data (Gauthier et
        al.'s Lorenz-63): a reproduction of such data, whose integration error is part of it, never a truth.
    substeps : int
        Fixed-step methods take this many equal steps per interval of ``time``.
    rtol, atol : float
        Tolerances of the reference integrator.

    Returns
    -------
    ndarray of shape (n_traj, n_steps, n_state)

    Notes
    -----
    The reference integrator solves the whole ensemble as one system. SciPy controls the RMS of the
    scaled local error over all ``N = n_traj · n_state`` components, which would let one trajectory's error
    hide among the others; dividing both tolerances by ``√N`` makes the RMS bound imply the stated
    bound on every component.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    t = check_time_grid(time)
    s0 = np.asarray(initial_state, dtype=np.float64)
    if s0.ndim == 1:
        s0 = s0[None, :]
    if s0.ndim != 2 or s0.shape[1] != system.n_state:
        raise ValueError(
            f"initial_state must have shape (n_traj, {system.n_state}) for this {system.system} system, "
            f"got shape {np.shape(initial_state)}"
        )
    if not np.isfinite(s0).all():
        raise ValueError("initial_state is not finite; give finite numbers")
    if system.n_traj not in (1, s0.shape[0]):
        raise ValueError(
            f"the system has {system.n_traj} parameter sets but initial_state has {s0.shape[0]} rows; "
            "give one parameter set or one per trajectory"
        )
    system = system.broadcast(s0.shape[0])
    if int(substeps) != substeps or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    if method == "exact":
        return system.exact(s0, t)
    if method == "reference":
        return _reference(system, s0, t, rtol, atol)
    if method == "rk23":
        return _scipy_defaults(system, s0, t, "RK23")
    step = euler_step if method == "euler" else rk4_step
    return _fixed_step(system, s0, t, step, int(substeps))


def euler_step(f, t: float, y: np.ndarray, h: float) -> np.ndarray:
    """One explicit Euler step ``y + h f(t, y)`` of ``f(t, y)`` (batched over the rows of ``y``)."""
    return y + h * f(t, y)


def rk4_step(f, t: float, y: np.ndarray, h: float) -> np.ndarray:
    """One classical fourth-order Runge–Kutta step of ``f(t, y)`` from ``(t, y)`` (batched over rows of ``y``)."""
    k1 = f(t, y)
    k2 = f(t + 0.5 * h, y + (0.5 * h) * k1)
    k3 = f(t + 0.5 * h, y + (0.5 * h) * k2)
    k4 = f(t + h, y + h * k3)
    return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _fixed_step(system: System, s0: np.ndarray, t: np.ndarray, step, substeps: int) -> np.ndarray:
    out = np.empty((s0.shape[0], t.size, s0.shape[1]))
    out[:, 0] = y = s0
    for i in range(t.size - 1):
        h = (t[i + 1] - t[i]) / substeps
        for j in range(substeps):
            y = step(system.rhs, t[i] + j * h, y, h)
        out[:, i + 1] = y
    return out


def _reference(system: System, s0: np.ndarray, t: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    check_bounds("rtol", np.asarray(rtol, dtype=float), low=0.0, strict=True)
    check_bounds("atol", np.asarray(atol, dtype=float), low=0.0, strict=True)
    n_traj, n_state = s0.shape
    if t.size == 1:
        return s0[:, None, :].copy()
    shrink = np.sqrt(s0.size)

    def f(tt: float, y: np.ndarray) -> np.ndarray:
        return system.rhs(tt, y.reshape(n_traj, n_state)).ravel()

    sol = solve_ivp(f, (t[0], t[-1]), s0.ravel(), method=system.reference_method(), t_eval=t, rtol=rtol / shrink, atol=atol / shrink)
    if not sol.success:
        raise RuntimeError(f"reference integration failed: {sol.message}")
    return sol.y.reshape(n_traj, n_state, t.size).transpose(0, 2, 1).copy()


def _scipy_defaults(system: System, s0: np.ndarray, t: np.ndarray, method: str) -> np.ndarray:
    """Each trajectory alone by SciPy's ``method`` at its default tolerances (solved together, the error control
    would see every trajectory's error at once and take other steps)."""
    out = np.empty((s0.shape[0], t.size, s0.shape[1]))
    for i in range(s0.shape[0]):
        one = system.take(slice(i, i + 1)) if system.n_traj > 1 else system

        def f(tt: float, y: np.ndarray, one=one) -> np.ndarray:
            return one.rhs(tt, y[None])[0]

        sol = solve_ivp(f, (t[0], t[-1]), s0[i], method=method, t_eval=t)
        if not sol.success:
            raise RuntimeError(f"{method} integration failed on trajectory {i}: {sol.message}")
        out[i] = sol.y.T
    return out


def flow_jacobian(system, state: ArrayLike, t0: float, dt: float, *, rtol: float = REFERENCE_RTOL,
                  atol: float = REFERENCE_ATOL) -> tuple[np.ndarray, np.ndarray]:
    r"""The exact flow map over one step and its Jacobian, from the variational equations.

    .. math:: \dot s = f(t, s), \quad \dot\Phi = J(t, s)\,\Phi, \qquad s(t_0) = s_0,\; \Phi(t_0) = I,

    integrated together by the reference integrator (DOP853 at ``rtol``/``atol`` on every component), with
    :math:`J = \partial f/\partial s` from the system's :meth:`~simulators.system.PhysicalSystem.jacobian`.

    Parameters
    ----------
    state : ndarray of shape (n_traj, n_state)
        The states s0 at ``t0`` (one per parameter set of ``system``, or any number for a single set).
    t0, dt : float
        Start time (it matters for a driven system) and step.

    Returns
    -------
    (ndarray of shape (n_traj, n_state), ndarray of shape (n_traj, n_state, n_state))
        Φ_dt(s0) and ∂Φ_dt/∂s0.
    """
    s0 = np.atleast_2d(np.asarray(state, dtype=np.float64))
    n_traj, n = s0.shape
    system = system.broadcast(n_traj)
    y0 = np.concatenate([s0, np.broadcast_to(np.eye(n).ravel(), (n_traj, n * n))], axis=1)
    shrink = np.sqrt(y0.size)

    def f(t: float, y: np.ndarray) -> np.ndarray:
        y = y.reshape(n_traj, n + n * n)
        s, phi = y[:, :n], y[:, n:].reshape(n_traj, n, n)
        return np.concatenate([system.rhs(t, s), (system.jacobian(t, s) @ phi).reshape(n_traj, -1)], axis=1).ravel()

    sol = solve_ivp(f, (t0, t0 + dt), y0.ravel(), method="DOP853", rtol=rtol / shrink, atol=atol / shrink)
    if not sol.success:
        raise RuntimeError(f"the variational equations failed: {sol.message}")
    end = sol.y[:, -1].reshape(n_traj, n + n * n)
    return end[:, :n].copy(), end[:, n:].reshape(n_traj, n, n).copy()


class LyapunovEstimate(NamedTuple):
    """The largest Lyapunov exponent per trajectory, its standard error and the time it was averaged over."""

    exponent: np.ndarray  # (n_traj,)
    stderr: np.ndarray  # (n_traj,): from the spread of ``batches`` consecutive batch means
    duration: float


def lyapunov_exponent(system, state: ArrayLike, t0: float = 0.0, *, duration: float, transient: float = 0.0,
                      interval: float | None = None, batches: int = 10, rtol: float = 1e-10,
                      atol: float = 1e-12) -> LyapunovEstimate:
    r"""The largest Lyapunov exponent of the orbit from each start, by Benettin's method.

    A tangent vector v is carried along the orbit by the variational equation and renormalised every
    ``interval``; the exponent is the mean logarithmic growth,

    .. math:: \lambda_1 = \frac{1}{T} \sum_k \ln \lVert v(t_k + \tau) \rVert, \qquad
              \dot v = J(t, s)\, v, \quad \lVert v(t_k) \rVert = 1,

    over ``duration`` T after a ``transient`` (which lets the orbit settle onto its attractor and v turn
    towards the most unstable direction). The first v is (1, …, 1)/√n: any vector with a component along that
    direction works, and this one needs no random number. For a linear flow ṡ = Ms the estimate tends to
    max Re λ(M), with an error below ln κ(V)/T (κ: the condition number of M's eigenvectors); for a bounded
    non-chaotic orbit it tends to 0 as ln(T)/T, for a chaotic one to a positive λ₁, whose inverse is the
    Lyapunov time over which errors grow by e. The standard error comes from the spread of ``batches``
    consecutive batch means.

    Parameters
    ----------
    state : ndarray of shape (n_traj, n_state)
        Starts at ``t0`` (one per parameter set of ``system``, or any number for a single set).
    duration, transient : float
        The averaging time T and the time discarded before it.
    interval : float, optional
        Time between renormalisations (default T/200: a growth of e^{λτ} far from overflow for any λτ < 700).
    """
    s = np.atleast_2d(np.asarray(state, dtype=np.float64))
    n_traj, n = s.shape
    check_bounds("duration", np.asarray(duration, float), low=0.0, strict=True)
    check_bounds("transient", np.asarray(transient, float), low=0.0)
    tau = duration / 200 if interval is None else float(interval)
    check_bounds("interval", np.asarray(tau), low=0.0, strict=True)
    n_chunks = max(batches, int(round(duration / tau)))
    tau = duration / n_chunks
    system = system.broadcast(n_traj)
    v = np.full((n_traj, n), 1.0 / np.sqrt(n))

    def f(t: float, y: np.ndarray) -> np.ndarray:
        y = y.reshape(n_traj, 2 * n)
        x, w = y[:, :n], y[:, n:]
        return np.concatenate([system.rhs(t, x), np.einsum("kij,kj->ki", system.jacobian(t, x), w)], axis=1).ravel()

    def advance(t: float, x: np.ndarray, w: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray]:
        sol = solve_ivp(f, (t, t + span), np.concatenate([x, w], axis=1).ravel(), method=system.reference_method(),
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"the variational equations failed at t = {t:g}: {sol.message}")
        end = sol.y[:, -1].reshape(n_traj, 2 * n)
        return end[:, :n], end[:, n:]

    t = float(t0)
    n_transient = int(np.ceil(transient / tau)) if transient > 0 else 0
    for _ in range(n_transient):
        s, v = advance(t, s, v, transient / n_transient)
        t += transient / n_transient
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    logs = np.empty((n_chunks, n_traj))
    for k in range(n_chunks):
        s, v = advance(t, s, v, tau)
        t += tau
        norm = np.linalg.norm(v, axis=1)
        if not np.all(np.isfinite(norm) & (norm > 0)):
            raise RuntimeError(f"the tangent vector left the floating-point range at t = {t:g}; use a shorter "
                               "interval")
        logs[k] = np.log(norm)
        v /= norm[:, None]
    starts = np.linspace(0, n_chunks, batches, endpoint=False).astype(int)
    rates = np.add.reduceat(logs, starts, axis=0) / (np.diff(np.append(starts, n_chunks)) * tau)[:, None]
    return LyapunovEstimate(exponent=logs.sum(axis=0) / duration,
                            stderr=rates.std(axis=0, ddof=1) / np.sqrt(batches), duration=float(duration))
