r"""The pendulum, damped and driven, and its exact solution by Jacobi elliptic functions.

.. math::

    \ddot\theta + \eta\,\dot\theta + \omega_0^2 \sin\theta = \sum_k F_k \cos(\Omega_k t + \varphi_k),

with state :math:`s = (\theta, \omega)`, :math:`\omega = \dot\theta` (θ unwrapped: a rotating pendulum's θ grows
without bound). The energy per unit :math:`m l^2`,

.. math:: E = \tfrac12\omega^2 + \omega_0^2 (1 - \cos\theta) = \tfrac12\omega^2 + 2\omega_0^2\sin^2(\theta/2),

is conserved for :math:`\eta = F = 0`, where the motion is solved exactly. With
:math:`k^2 = E/(2\omega_0^2) = \sin^2(\theta_0/2) + \omega_0'^2/(4\omega_0^2)` (:math:`\omega_0'` the initial
angular velocity) and :math:`k'^2 = \cos^2(\theta_0/2) - \omega_0'^2/(4\omega_0^2)` computed directly, never as
:math:`1 - k^2`:

* **libration** (:math:`k < 1`): :math:`\sin(\theta/2) = k\,\mathrm{sn}(u)`, :math:`\cos(\theta/2) =
  \mathrm{dn}(u)`, :math:`\omega = 2k\omega_0\,\mathrm{cn}(u)`, :math:`u = \omega_0 t + u_0`, parameter
  :math:`m = k^2`; period :math:`T = 4K(k^2)/\omega_0`;
* **the separatrix** (:math:`k = 1`): the same with :math:`\mathrm{sn} = \tanh`, :math:`\mathrm{cn} =
  \mathrm{dn} = \mathrm{sech}` (the pendulum creeps up to the inverted position forever);
* **rotation** (:math:`k > 1`): :math:`\theta/2 = \mathrm{am}(v)`, :math:`\omega = 2k\omega_0\,\mathrm{dn}(v)`,
  :math:`v = k\omega_0 t + v_0`, parameter :math:`1/k^2` (complement :math:`-k'^2/k^2`), continued through
  :math:`\mathrm{am}(v + 2\tilde K) = \mathrm{am}(v) + \pi`; θ advances by 2π in :math:`T = 2\tilde K/(k\omega_0)`.

:math:`u_0` (or :math:`v_0`) is the incomplete integral of the first kind at the initial amplitude, and the
elliptic functions are evaluated with the complementary parameter given directly
(:mod:`simulators.elliptic`), so the closed form holds to the separatrix (θ0 = π − 10⁻⁶: :math:`k'^2 =
2.5\times10^{-13}`). Damped or driven motion has no closed form: its truth is the certified reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds
from .drive import DRIVE_PARAMETERS, DrivenSystem, check_drive_specs, drive_specs
from .elliptic import complete_k, incomplete_f, jacobi
from .params import EnsembleParams, ParamSpec, check_range, fixed, uniform
from .system import register_system

__all__ = ["Pendulum", "PendulumParams"]


@dataclass(frozen=True, kw_only=True)
class PendulumParams(EnsembleParams):
    """Parameter specs of a pendulum ensemble; ``theta0`` and ``omega0`` are the initial angle and angular
    velocity (ω0 in the equation is ``natural_frequency``)."""

    damping: ParamSpec = fixed(0.0)
    natural_frequency: ParamSpec = fixed(1.0)
    drive_amplitude: tuple[ParamSpec, ...] = drive_specs()
    drive_frequency: tuple[ParamSpec, ...] = drive_specs()
    drive_phase: tuple[ParamSpec, ...] = drive_specs()
    theta0: ParamSpec = uniform(-2.5, 2.5)
    omega0: ParamSpec = fixed(0.0)

    INITIAL_STATE = ("theta0", "omega0")
    TERMS = DRIVE_PARAMETERS

    def __post_init__(self) -> None:
        check_range("damping", self.damping, low=0.0)
        check_range("natural_frequency", self.natural_frequency, low=0.0, strict=True)
        check_drive_specs(self)

    def build(self, values) -> Pendulum:
        return Pendulum(**values)


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class Pendulum(DrivenSystem):
    """An ensemble of pendulums ``θ'' + η θ' + ω0² sin θ = Σ_k F_k cos(Ω_k t + φ_k)``.

    Parameters
    ----------
    damping : float or ndarray of shape (n_traj,)
        η ≥ 0.
    natural_frequency : float or ndarray of shape (n_traj,)
        ω0 > 0, the small-oscillation angular frequency √(g/l).
    drive_amplitude, drive_frequency, drive_phase : float or ndarray of shape (n_traj,) or (n_traj, n_terms)
        The torque per unit m l² (as for the oscillator).
    """

    damping: ArrayLike = 0.0
    natural_frequency: ArrayLike = 1.0

    system = "pendulum"
    state_names = ("theta", "omega")
    state_units = ("rad", "rad/T")
    PARAMETERS = ("damping", "natural_frequency", *DRIVE_PARAMETERS)
    Params = PendulumParams
    #: "angle": θ alone.
    OBSERVATIONS = {"full": None, "angle": (0,)}
    MODEL_PARAMETERS = ("damping", "natural_frequency", "drive_amplitude", "drive_frequency")
    #: Unit mass: the velocity is the momentum (H = p²/2 + V(q, t) where undamped).
    CANONICAL = (("theta",), ("omega",))
    # θ̈ = −ω0² sin θ − η θ̇ + F·(drive): linear in (θ, ω, sin θ, cos θ, drive features).
    LIBRARY_DEGREE = 1
    LIBRARY_PARAMETER_DEGREE = {"natural_frequency": 2, "damping": 1, "drive_amplitude": 1}

    @classmethod
    def library_terms(cls):
        """sin θ and cos θ: the restoring torque and the energy's potential, which no polynomial in θ holds."""
        return {"sin(theta)": lambda s, xp=np: xp.sin(s[..., 0]), "cos(theta)": lambda s, xp=np: xp.cos(s[..., 0])}

    def __post_init__(self) -> None:
        eta = check_bounds("damping", as_real_array("damping", self.damping, max_ndim=1), low=0.0)
        omega0 = check_bounds("natural_frequency", as_real_array("natural_frequency", self.natural_frequency,
                                                                 max_ndim=1), low=0.0, strict=True)
        self.set_parameters(damping=eta, natural_frequency=omega0)

    # ------------------------------------------------------------------ dynamics
    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        theta, omega = state[..., 0], state[..., 1]
        eta, w0 = self.per_trajectory(state, "damping", "natural_frequency")
        return np.stack([omega, self.force_at(t, state) - eta * omega - w0**2 * np.sin(theta)], axis=-1)

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """[[0, 1], [−ω0² cos θ, −η]], shape (n_traj, 2, 2)."""
        state = np.atleast_2d(state)
        out = np.zeros((state.shape[0], 2, 2))
        out[:, 0, 1] = 1.0
        out[:, 1, 0] = -self.natural_frequency**2 * np.cos(state[:, 0])
        out[:, 1, 1] = -self.damping
        return out

    # ------------------------------------------------------------------ physics
    def energy(self, states: np.ndarray) -> np.ndarray:
        """E = ω²/2 + 2 ω0² sin²(θ/2) (= ω²/2 + ω0²(1 − cos θ)), for states (n_traj, ..., 2)."""
        w0 = self.natural_frequency.reshape((-1,) + (1,) * (states.ndim - 2))
        return 0.5 * states[..., 1] ** 2 + 2 * (w0 * np.sin(0.5 * states[..., 0])) ** 2

    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        return {"energy": self.energy}

    def conserves_invariants(self) -> np.ndarray:
        return (self.damping == 0) & ~self.driven_trajectories

    def equilibria(self) -> dict[str, np.ndarray]:
        """Hanging at rest (θ = 0, stable: small oscillations at ω0) and inverted (θ = π, a saddle) in free motion."""
        free = ~self.driven_trajectories
        return {"bottom": self._at([0.0, 0.0], free), "top": self._at([np.pi, 0.0], free)}

    def characteristic_period(self) -> np.ndarray:
        """2π/Ω of the first drive term for driven motion, else the small-oscillation period 2π/ω0."""
        return 2 * np.pi / np.where(self.driven_trajectories, self.drive_frequency[:, 0], self.natural_frequency)

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        """``period`` (against T(E)) for free undamped motion when θ is observed."""
        return "period" if "theta" in observed and self.conserves_invariants().all() else None

    def modulus(self, initial_state: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """k² and k'² (= 1 − k², computed without cancellation) of free motion from each initial state."""
        s0 = np.atleast_2d(np.asarray(initial_state, dtype=np.float64))
        half = 0.5 * (s0[:, 0] - 2 * np.pi * np.round(s0[:, 0] / (2 * np.pi)))
        p = s0[:, 1] / (2 * self.natural_frequency)
        c = np.cos(half)
        return np.sin(half) ** 2 + p**2, (c - p) * (c + p)

    def period(self, initial_state: ArrayLike) -> np.ndarray:
        """The exact period of free undamped motion from each state: 4K(k²)/ω0 in libration, the time θ takes
        to advance 2π (2K(1/k²)/(k ω0)) in rotation, infinite on the separatrix; shape (n_traj,)."""
        k2, kc2 = self.modulus(initial_state)
        w0 = self.natural_frequency
        with np.errstate(divide="ignore", invalid="ignore"):
            rotation = 2 * complete_k(np.abs(kc2) / k2) / (np.sqrt(k2) * w0)
            return np.where(kc2 > 0, 4 * complete_k(kc2) / w0, np.where(kc2 < 0, rotation, np.inf))

    # ------------------------------------------------------------------ exact solution
    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray:
        """The closed form of free undamped motion (see the module docstring), shape (n_traj, n_steps, 2)."""
        t, s0 = self.check_start(initial_state, time)
        if s0.shape[0] != self.n_traj:
            return self.broadcast(s0.shape[0]).exact(s0, t)
        self.check_free("free undamped motion (damping and drive zero)", damping=self.damping)
        w0 = self.natural_frequency[:, None]
        tau = (t - t[0])[None, :]
        turns = np.round(s0[:, 0] / (2 * np.pi))
        half = 0.5 * (s0[:, 0] - 2 * np.pi * turns)  # θ0/2 in [−π/2, π/2]: cos(θ0/2) ≥ 0
        sh, ch = np.sin(half), np.cos(half)
        p = s0[:, 1] / (2 * self.natural_frequency)
        k2, kc2 = sh**2 + p**2, (ch - p) * (ch + p)
        k = np.sqrt(k2)
        out = np.empty((self.n_traj, t.size, 2))

        lib = kc2 >= 0
        if lib.any():
            kk = k[lib]
            moving = kk > 0
            sn0 = np.where(moving, sh[lib] / np.where(moving, kk, 1), 0.0)
            cn0 = np.where(moving, p[lib] / np.where(moving, kk, 1), 1.0)
            u = w0[lib] * tau + incomplete_f(sn0, cn0, ch[lib] ** 2, kc2[lib])[:, None]
            sn, cn, dn = jacobi(u, k2[lib][:, None], kc2[lib][:, None])
            out[lib, :, 0] = 2 * np.arctan2(kk[:, None] * sn, dn)
            out[lib, :, 1] = 2 * (kk * self.natural_frequency[lib])[:, None] * cn
        rot = ~lib
        if rot.any():
            kk = k[rot]
            direction = np.sign(p[rot])
            m, mc = 1 / k2[rot], -kc2[rot] / k2[rot]
            v0 = incomplete_f(direction * sh[rot], ch[rot], p[rot] ** 2 / k2[rot], mc)
            v = (kk * self.natural_frequency[rot])[:, None] * tau + v0[:, None]
            sn, cn, dn = jacobi(v, m[:, None], mc[:, None])
            # am(v) unwrapped: am(v + 2K̃ j) = am(v) + jπ, with am of the reduced argument in [−π/2, π/2].
            j = np.round(v / (2 * complete_k(mc))[:, None])
            r = np.arctan2(sn, cn) - j * np.pi
            am = j * np.pi + (r - 2 * np.pi * np.round(r / (2 * np.pi)))
            out[rot, :, 0] = direction[:, None] * 2 * am
            out[rot, :, 1] = (direction * 2 * kk * self.natural_frequency[rot])[:, None] * dn
        out[..., 0] += (2 * np.pi * turns)[:, None]
        return out
