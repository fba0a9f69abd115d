r"""The linear damped, driven oscillator and its exact solution.

.. math::

    \ddot x + \eta\,\dot x + \omega_0^2 x = F(t), \qquad
    F(t) = \sum_k F_k \cos(\Omega_k t + \varphi_k),

with state :math:`s = (x, v)`, :math:`v = \dot x`.

Convention: ``damping`` is :math:`\eta`, the coefficient of :math:`\dot x` (some course code writes
:math:`2\gamma\dot x`, so :math:`\eta = 2\gamma`). The damping ratio is :math:`\zeta = \eta / (2\omega_0)`:
under-damped for :math:`\eta < 2\omega_0`, critically damped at :math:`\eta = 2\omega_0`, over-damped above.
Units are arbitrary but consistent: time T, position L, velocity L/T, force per unit mass L/T².

The exact solution is transient + steady state. Free motion is :math:`s(t) = \Phi(t)\,s_0` with

.. math::

    \Phi(t) = \begin{pmatrix} E + \tfrac{\eta}{2} G & G \\ -\omega_0^2 G & E - \tfrac{\eta}{2} G\end{pmatrix},
    \quad E = e^{-\eta t/2} C(t),\; G = e^{-\eta t/2} S(t),

where, with :math:`D = \omega_0^2 - \eta^2/4`, :math:`(C, S) = (\cos\omega_d t, \sin(\omega_d t)/\omega_d)`
for :math:`D = \omega_d^2 > 0`, :math:`(1, t)` for :math:`D = 0` and :math:`(\cosh\kappa t,
\sinh(\kappa t)/\kappa)` for :math:`D = -\kappa^2 < 0`. The over-damped branch is evaluated through
``expm1`` and the small root :math:`r_+ = -\omega_0^2/(\eta/2 + \kappa)`, so neither overflow at large
:math:`\kappa t` nor cancellation near critical damping spoils it.

For :math:`\eta > 0` each drive term has the steady state
:math:`x_p = \mathrm{Re}\,[Z e^{i\Omega t}]`, :math:`Z = F e^{i\varphi}/(\omega_0^2 - \Omega^2 + i\eta\Omega)`
(amplitude :math:`|Z| = F/\sqrt{(\omega_0^2-\Omega^2)^2 + (\eta\Omega)^2}`, finite at resonance), and the
transient is the free motion from :math:`s_0 - s_p(0)`.

For :math:`\eta = 0` the particular and homogeneous parts are combined into the response from rest,

.. math::

    R(t) = \frac{F}{\Sigma}\Big[2Q(t)\sin\!\big(\tfrac{\Sigma t}{2} + \varphi\big)
           - \frac{\sin\varphi\,\sin\omega_0 t}{\omega_0}\Big],
    \quad \Sigma = \omega_0 + \Omega,\; Q(t) = \frac{\sin(\Delta t/2)}{\Delta},\; \Delta = \omega_0 - \Omega,

which has no :math:`1/(\omega_0^2 - \Omega^2)` to cancel near resonance and, at exact resonance
(:math:`Q = t/2`), is the secular term :math:`\frac{F}{2\omega_0}\, t \sin(\omega_0 t + \varphi)` less the free
motion that cancels its initial velocity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds, check_time_grid
from .drive import DRIVE_PARAMETERS, DrivenSystem, check_drive_specs, drive_specs
from .params import EnsembleParams, ParamSpec, check_range, fixed, uniform
from .system import register_system

__all__ = ["LinearOscillator", "OscillatorParams", "steady_state_response"]

#: Damping ratios equal to 1 up to this relative tolerance count as critical (ζ = 1 from rounded parameters).
CRITICAL_RTOL = 1e-9


@dataclass(frozen=True, kw_only=True)
class OscillatorParams(EnsembleParams):
    """Parameter specs of an oscillator ensemble; drive specs may be a tuple, one spec per drive term."""

    damping: ParamSpec = fixed(0.0)
    natural_frequency: ParamSpec = fixed(1.0)
    drive_amplitude: tuple[ParamSpec, ...] = drive_specs()
    drive_frequency: tuple[ParamSpec, ...] = drive_specs()
    drive_phase: tuple[ParamSpec, ...] = drive_specs()
    x0: ParamSpec = uniform(-1.0, 1.0)
    v0: ParamSpec = uniform(-1.0, 1.0)

    INITIAL_STATE = ("x0", "v0")
    TERMS = DRIVE_PARAMETERS

    def __post_init__(self) -> None:
        check_range("damping", self.damping, low=0.0)
        check_range("natural_frequency", self.natural_frequency, low=0.0, strict=True)
        check_drive_specs(self)

    def build(self, values) -> LinearOscillator:
        return LinearOscillator(**values)


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class LinearOscillator(DrivenSystem):
    """An ensemble of linear oscillators ``x'' + η x' + ω0² x = Σ_k F_k cos(Ω_k t + φ_k)``.

    Every parameter is a scalar (shared by all trajectories) or an array with one entry per trajectory;
    the drive parameters may also be ``(n_traj, n_terms)`` for a sum of cosine terms (use shape
    ``(1, n_terms)`` for terms shared by all trajectories).

    Parameters
    ----------
    damping : float or ndarray of shape (n_traj,)
        η ≥ 0, the coefficient of x' (η = 2γ in the 2γ convention).
    natural_frequency : float or ndarray of shape (n_traj,)
        ω0 > 0.
    drive_amplitude, drive_frequency, drive_phase : float or ndarray of shape (n_traj,) or (n_traj, n_terms)
        F_k (any real), Ω_k ≥ 0 and φ_k (radians) of each drive term. Free motion is ``drive_amplitude=0``.
    """

    damping: ArrayLike = 0.0
    natural_frequency: ArrayLike = 1.0

    system = "oscillator"
    state_names = ("x", "v")
    state_units = ("L", "L/T")
    PARAMETERS = ("damping", "natural_frequency", "drive_amplitude", "drive_frequency", "drive_phase")
    Params = OscillatorParams
    #: "position": x alone, so a model must carry the velocity in its memory.
    OBSERVATIONS = {"full": None, "position": (0,)}
    #: Drive features (from DrivenSystem): "phase", the (cos, sin) of each term's phase, from which the exact
    #: one-step map is affine; "force"; "none".
    #: What a parameter-aware model may be given (each drive term contributes one column).
    MODEL_PARAMETERS = ("damping", "natural_frequency", "drive_amplitude", "drive_frequency")
    #: Unit mass: the velocity is the momentum (H = p²/2 + V(q, t) where undamped).
    CANONICAL = (("x",), ("v",))
    # ẍ = −ω0² x − η ẋ + F·(drive): linear in (x, v, drive features); ω0² x adds two degrees, η v and F·drive one.
    LIBRARY_DEGREE = 1
    LIBRARY_PARAMETER_DEGREE = {"natural_frequency": 2, "damping": 1, "drive_amplitude": 1}
    #: "regime": under-, critically and over-damped (ζ < 1, ζ = 1, ζ > 1).
    GROUPINGS = ("regime",)

    def __post_init__(self) -> None:
        eta = check_bounds("damping", as_real_array("damping", self.damping, max_ndim=1), low=0.0)
        omega0 = check_bounds(
            "natural_frequency", as_real_array("natural_frequency", self.natural_frequency, max_ndim=1),
            low=0.0, strict=True,
        )
        self.set_parameters(damping=eta, natural_frequency=omega0)

    # ------------------------------------------------------------------ description
    @property
    def damping_ratio(self) -> np.ndarray:
        """ζ = η / (2 ω0), shape (n_traj,)."""
        return self.damping / (2 * self.natural_frequency)

    @property
    def damped_frequency(self) -> np.ndarray:
        """ω_d = ω0 √(1 − ζ²) for under-damped trajectories, NaN for the others, shape (n_traj,)."""
        with np.errstate(invalid="ignore"):
            return np.where(self.damping_ratio < 1 - CRITICAL_RTOL,
                            self.natural_frequency * np.sqrt(np.clip(1 - self.damping_ratio**2, 0, None)), np.nan)

    def characteristic_period(self) -> np.ndarray:
        """2π/Ω of the (first) drive term for driven motion, 2π/ω_d for free under-damped motion, 2π/ω0
        otherwise, shape (n_traj,)."""
        zeta = self.damping_ratio
        w0 = self.natural_frequency
        with np.errstate(invalid="ignore"):
            free = np.where(zeta < 1, w0 * np.sqrt(np.clip(1 - zeta**2, 0, None)), w0)
        return 2 * np.pi / np.where(self.driven_trajectories, self.drive_frequency[:, 0], free)

    def equilibria(self) -> dict[str, np.ndarray]:
        """Rest at the origin (free motion)."""
        return {"rest": self._at([0.0, 0.0], ~self.driven_trajectories)}

    def may_be_chaotic(self) -> bool:
        """Never: the oscillator is linear (its Lyapunov exponents are the real parts −η/2 ± Re√(η²/4 − ω0²))."""
        return False

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        """``resonance`` for driven motion, ``decay`` for free motion; None unless x is observed."""
        if "x" not in observed:
            return None
        return "resonance" if self.driven_trajectories.any() else "decay"

    def groups(self, by: str) -> dict[str, np.ndarray]:
        if by != "regime":
            return super().groups(by)
        zeta = self.damping_ratio
        critical = np.abs(zeta - 1) <= CRITICAL_RTOL
        return {"under-damped (ζ < 1)": ~critical & (zeta < 1), "critically damped (ζ = 1)": critical,
                "over-damped (ζ > 1)": ~critical & (zeta > 1)}

    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """The mechanical energy (conserved for free undamped motion, bookkept otherwise)."""
        return {"energy": self.energy}

    def conserves_invariants(self) -> np.ndarray:
        return (self.damping == 0) & ~self.driven_trajectories

    # ------------------------------------------------------------------ dynamics
    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        """ds/dt at time ``t`` for ``state`` of shape (n_traj, 2) (or (2,) with one trajectory)."""
        x, v = state[..., 0], state[..., 1]
        force = self.force_at(t, state)
        eta, w0 = self.per_trajectory(state, "damping", "natural_frequency")
        return np.stack([v, force - eta * v - w0**2 * x], axis=-1)

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """∂f/∂s = [[0, 1], [−ω0², −η]] (the same at every state), shape (n_traj, 2, 2)."""
        state = np.atleast_2d(state)
        out = np.zeros((state.shape[0], 2, 2))
        out[:, 0, 1] = 1.0
        out[:, 1, 0] = -self.natural_frequency**2
        out[:, 1, 1] = -self.damping
        return out

    def energy(self, states: np.ndarray) -> np.ndarray:
        """Mechanical energy per unit mass, ``v²/2 + ω0² x²/2``, for states of shape (n_traj, ..., 2)."""
        w0 = self.natural_frequency.reshape((-1,) + (1,) * (states.ndim - 2))
        return 0.5 * states[..., 1] ** 2 + 0.5 * (w0 * states[..., 0]) ** 2

    # ------------------------------------------------------------------ exact solution
    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray:
        """The closed-form solution (see the module docstring).

        Parameters
        ----------
        initial_state : ndarray of shape (n_traj, 2)
            (x, v) at ``time[0]`` (the solution is time-translated: the drive phase refers to t = 0).
        time : ndarray of shape (n_steps,)

        Returns
        -------
        ndarray of shape (n_traj, n_steps, 2)
        """
        t = check_time_grid(time)
        s0 = np.asarray(initial_state, dtype=np.float64)
        if s0.ndim != 2 or s0.shape[1] != 2 or self.n_traj not in (1, s0.shape[0]):
            raise ValueError(f"initial_state must have shape ({self.n_traj}, 2), got {s0.shape}")
        if s0.shape[0] != self.n_traj:
            return self.broadcast(s0.shape[0]).exact(s0, t)
        # Shift the drive so that the solution starts at t[0]: F(t0 + τ) has phase Ω t0 + φ.
        tau = t - t[0]
        phase = self.drive_phase + self.drive_frequency * t[0]
        trig = _GridTrig(tau)
        out = np.empty((self.n_traj, t.size, 2))
        # Blocks of trajectories keep every temporary array in cache (a several-fold speed-up over whole-
        # ensemble temporaries, which the allocator maps and page-faults afresh on every call).
        block = max(1, 2**17 // t.size)
        for start in range(0, self.n_traj, block):
            i = slice(start, start + block)
            out[i] = _exact_block(self.damping[i], self.natural_frequency[i], self.drive_amplitude[i],
                                  self.drive_frequency[i], phase[i], s0[i], tau, trig)
        return out


class _GridTrig:
    """cos(ωτ) and sin(ωτ) for many ω on one time grid, by angle addition where the grid is uniform.

    With τ_j = (aB + b)Δ and B ≈ √m, cos and sin of ω τ_j follow from those of ω aBΔ and ω bΔ by one product
    formula: about 2√m trigonometric evaluations per ω instead of 2m (which dominate the closed form's cost),
    with an error of a few ulp that does not grow along the grid (no recurrence).
    """

    def __init__(self, tau: np.ndarray) -> None:
        m = tau.size
        self.tau = tau
        self.uniform = False
        if m >= 64:
            dt = tau[-1] / (m - 1)
            j = np.arange(m)
            # Uniform to rounding: using jΔ for τ_j then changes ωτ by no more than rounding already does.
            self.uniform = bool(np.all(np.abs(tau - j * dt) <= 4 * np.finfo(float).eps * tau[-1]))
        if self.uniform:
            self.b = int(np.ceil(np.sqrt(m)))
            self.coarse = np.arange(-(-m // self.b)) * self.b * dt
            self.fine = np.arange(self.b) * dt

    def __call__(self, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """cos and sin of omega[:, None] * tau, each ndarray of shape (len(omega), m)."""
        w = omega[:, None]
        if not self.uniform:
            arg = w * self.tau[None, :]
            return np.cos(arg), np.sin(arg)
        ch, sh = np.cos(w * self.coarse)[:, :, None], np.sin(w * self.coarse)[:, :, None]
        cl, sl = np.cos(w * self.fine)[:, None, :], np.sin(w * self.fine)[:, None, :]
        n, m = omega.size, self.tau.size
        cos = (ch * cl - sh * sl).reshape(n, -1)[:, :m]
        sin = (sh * cl + ch * sl).reshape(n, -1)[:, :m]
        return cos, sin


def _exact_block(eta, w0, amp, freq, phase, s0, tau, trig):
    """The closed form for a block of trajectories: parameters (n,), drive (n, K), s0 (n, 2) -> (n, m, 2)."""
    n, m = eta.size, tau.size
    E, G = _free_propagator(eta, w0, tau, trig)
    x0, v0 = s0[:, :1].copy(), s0[:, 1:].copy()
    x_part = np.zeros((n, m))
    v_part = np.zeros((n, m))
    damped = eta > 0
    driven = amp != 0
    for k in range(amp.shape[1]):
        d = damped & driven[:, k]
        if d.any():
            # Steady state |Z| cos(Ωτ + arg Z); the transient starts from s0 − s_p(0).
            om = freq[d, k]
            Z = amp[d, k] * np.exp(1j * phase[d, k]) / (w0[d] ** 2 - om**2 + 1j * eta[d] * om)
            cos, sin = trig(om)
            re, im = Z.real[:, None], Z.imag[:, None]
            x_part[d] += re * cos - im * sin  # Re[Z e^{iΩτ}]
            v_part[d] -= om[:, None] * (im * cos + re * sin)  # Re[iΩ Z e^{iΩτ}]
            x0[d, 0] -= Z.real
            v0[d, 0] += om * Z.imag  # v_p(0) = Re(iΩZ) = −Ω Im Z
        u = ~damped & driven[:, k]
        if u.any():
            F, W, Om = amp[u, k][:, None], w0[u][:, None], freq[u, k][:, None]
            ph, tt = phase[u, k][:, None], tau[None, :]
            total, delta = W + Om, W - Om
            # Q = sin(Δτ/2)/Δ, written with np.sinc (sin(πu)/(πu)) so that Δ = 0 gives τ/2 exactly.
            Q = 0.5 * tt * np.sinc(delta * tt / (2 * np.pi))
            arg = 0.5 * total * tt + ph
            x_part[u] += F / total * (2 * Q * np.sin(arg) - np.sin(ph) * np.sin(W * tt) / W)
            v_part[u] += F / total * (np.cos(0.5 * delta * tt) * np.sin(arg) + Q * total * np.cos(arg)
                                      - np.sin(ph) * np.cos(W * tt))
    half = (eta / 2)[:, None]
    out = np.empty((n, m, 2))
    out[..., 0] = (E + half * G) * x0 + G * v0 + x_part
    out[..., 1] = -(w0[:, None] ** 2) * G * x0 + (E - half * G) * v0 + v_part
    return out


def _free_propagator(damping: np.ndarray, natural_frequency: np.ndarray, tau: np.ndarray, trig: _GridTrig):
    """E = e^{-ητ/2} C(τ) and G = e^{-ητ/2} S(τ), each of shape (n_traj, n_steps), in every regime."""
    n, m = damping.size, tau.size
    E, G = np.empty((n, m)), np.empty((n, m))
    half = damping / 2
    disc = (natural_frequency - half) * (natural_frequency + half)  # ω0² − η²/4 without cancellation
    tt = tau[None, :]
    under, over = disc > 0, disc < 0
    crit = ~(under | over)
    if under.any():
        wd = np.sqrt(disc[under])[:, None]
        decay = np.exp(-half[under][:, None] * tt)
        cos, sin = trig(wd[:, 0])
        E[under] = decay * cos
        G[under] = decay * sin / wd
    if crit.any():
        decay = np.exp(-half[crit][:, None] * tt)
        E[crit] = decay
        G[crit] = tt * decay
    if over.any():
        kappa = np.sqrt(-disc[over])[:, None]
        r_plus = -(natural_frequency[over] ** 2)[:, None] / (half[over][:, None] + kappa)  # the slow root
        slow = np.exp(r_plus * tt)
        E[over] = 0.5 * slow * (1 + np.exp(-2 * kappa * tt))
        G[over] = -slow * np.expm1(-2 * kappa * tt) / (2 * kappa)
    return E, G


def steady_state_response(
    damping: ArrayLike, natural_frequency: ArrayLike, drive_frequency: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Gain and phase lag of the steady state: ``x_p = F · gain · cos(Ω t + φ − lag)``.

    ``gain = 1/√((ω0² − Ω²)² + (ηΩ)²)`` (the resonance curve per unit drive amplitude) and
    ``lag = atan2(ηΩ, ω0² − Ω²)`` in [0, π]. Undamped resonance (η = 0, Ω = ω0) gives an infinite gain.
    Arguments broadcast against each other.
    """
    eta = np.asarray(damping, dtype=np.float64)
    w0 = np.asarray(natural_frequency, dtype=np.float64)
    om = np.asarray(drive_frequency, dtype=np.float64)
    detuning = (w0 - om) * (w0 + om)
    with np.errstate(divide="ignore"):
        gain = 1.0 / np.hypot(detuning, eta * om)
    return gain, np.arctan2(eta * om, detuning)
