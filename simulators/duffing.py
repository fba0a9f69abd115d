r"""The Duffing oscillator, damped and driven, and its exact solution by Jacobi elliptic functions.

.. math::

    \ddot x + \delta\,\dot x + \alpha x + \beta x^3 = \sum_k F_k \cos(\Omega_k t + \varphi_k),

state :math:`s = (x, v)`. The energy :math:`E = \tfrac12 v^2 + \tfrac12\alpha x^2 + \tfrac14\beta x^4` is
conserved for :math:`\delta = F = 0`, where the motion is solved exactly. With

.. math:: s^2 = \alpha^2 + 4\beta E = (\alpha + \beta x_0^2)^2 + 2\beta v_0^2

(written so, it needs no cancellation of E against the barrier) and the turning point :math:`A` (v = 0):

* **hardening** (:math:`\alpha \ge 0`, :math:`\beta > 0`; or :math:`\beta = 0 < \alpha`, harmonic) and
  **across the barrier of the double well** (:math:`\alpha < 0 < \beta`, :math:`E > 0`):
  :math:`x = A\,\mathrm{cn}(\omega t + u_0)`, :math:`\omega^2 = s`, :math:`A^2 = (s - \alpha)/\beta`,
  :math:`m = (s - \alpha)/(2s)`, :math:`1 - m = (s + \alpha)/(2s)`; period :math:`4K/\omega`;
* **softening inside the well** (:math:`\beta < 0 < \alpha`, :math:`E < \alpha^2/(4|\beta|)`,
  :math:`|x_0| < \sqrt{\alpha/|\beta|}`): :math:`x = A\,\mathrm{sn}(\omega t + u_0)`, :math:`A^2 = 4E/(\alpha + s)`,
  :math:`\omega^2 = (\alpha + s)/2`, :math:`m = (\alpha - s)/(\alpha + s)`, :math:`1 - m = 2s/(\alpha + s)`;
  period :math:`4K/\omega`;
* **inside one well of the double well** (:math:`\alpha < 0 < \beta`, :math:`E < 0`):
  :math:`x = \pm A\,\mathrm{dn}(\omega t + u_0)`, :math:`A^2 = (s - \alpha)/\beta`, :math:`\omega^2 = (s - \alpha)/2`,
  :math:`m = 2s/(s - \alpha)`, :math:`1 - m = -4\beta E/(s - \alpha)^2`; period :math:`2K/\omega`.

(:math:`A^2 = 4E/(\alpha + s)` and :math:`(s - \alpha)/\beta` are equal; each is used where it does not cancel.)
Each parameter's complement is computed directly, so the solution holds up to the separatrices (:mod:`simulators
.elliptic`). Other starts (escaping a softening well, :math:`\alpha \le 0` with :math:`\beta \le 0`) and damped or
driven motion have no closed form: their truth is the certified reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds, check_finite
from .drive import DRIVE_PARAMETERS, DrivenSystem, check_drive_specs, drive_specs
from .elliptic import complete_k, incomplete_f, jacobi
from .params import EnsembleParams, ParamSpec, check_range, fixed, uniform
from .system import register_system

__all__ = ["Duffing", "DuffingParams"]


@dataclass(frozen=True, kw_only=True)
class DuffingParams(EnsembleParams):
    """Parameter specs of a Duffing ensemble (``x0``, ``v0``: the initial state)."""

    damping: ParamSpec = fixed(0.0)
    linear_stiffness: ParamSpec = fixed(1.0)
    cubic_stiffness: ParamSpec = fixed(1.0)
    drive_amplitude: tuple[ParamSpec, ...] = drive_specs()
    drive_frequency: tuple[ParamSpec, ...] = drive_specs()
    drive_phase: tuple[ParamSpec, ...] = drive_specs()
    x0: ParamSpec = uniform(-1.0, 1.0)
    v0: ParamSpec = uniform(-1.0, 1.0)

    INITIAL_STATE = ("x0", "v0")
    TERMS = DRIVE_PARAMETERS

    def __post_init__(self) -> None:
        check_range("damping", self.damping, low=0.0)
        check_drive_specs(self)

    def build(self, values) -> Duffing:
        return Duffing(**values)


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class Duffing(DrivenSystem):
    """An ensemble of Duffing oscillators ``x'' + δ x' + α x + β x³ = Σ_k F_k cos(Ω_k t + φ_k)``.

    Parameters
    ----------
    damping : float or ndarray of shape (n_traj,)
        δ ≥ 0.
    linear_stiffness, cubic_stiffness : float or ndarray of shape (n_traj,)
        α and β (any sign: β > 0 hardening, β < 0 softening, α < 0 < β the double well).
    drive_amplitude, drive_frequency, drive_phase : float or ndarray of shape (n_traj,) or (n_traj, n_terms)
    """

    damping: ArrayLike = 0.0
    linear_stiffness: ArrayLike = 1.0
    cubic_stiffness: ArrayLike = 1.0

    system = "duffing"
    state_names = ("x", "v")
    state_units = ("L", "L/T")
    PARAMETERS = ("damping", "linear_stiffness", "cubic_stiffness", *DRIVE_PARAMETERS)
    Params = DuffingParams
    OBSERVATIONS = {"full": None, "position": (0,)}
    MODEL_PARAMETERS = ("damping", "linear_stiffness", "cubic_stiffness", "drive_amplitude", "drive_frequency")
    #: Unit mass: the velocity is the momentum (H = p²/2 + V(q, t) where undamped).
    CANONICAL = (("x",), ("v",))
    # ẍ = −δ ẋ − α x − β x³ + F·(drive): cubic; each parameter given multiplies a term (one degree more).
    LIBRARY_DEGREE = 3
    LIBRARY_PARAMETER_DEGREE = {"damping": 1, "linear_stiffness": 1, "cubic_stiffness": 1, "drive_amplitude": 1}

    def __post_init__(self) -> None:
        delta = check_bounds("damping", as_real_array("damping", self.damping, max_ndim=1), low=0.0)
        alpha = check_finite("linear_stiffness", as_real_array("linear_stiffness", self.linear_stiffness, max_ndim=1))
        beta = check_finite("cubic_stiffness", as_real_array("cubic_stiffness", self.cubic_stiffness, max_ndim=1))
        self.set_parameters(damping=delta, linear_stiffness=alpha, cubic_stiffness=beta)

    # ------------------------------------------------------------------ dynamics
    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        x, v = state[..., 0], state[..., 1]
        delta, a, b = self.per_trajectory(state, "damping", "linear_stiffness", "cubic_stiffness")
        return np.stack([v, self.force_at(t, state) - delta * v - (a + b * x * x) * x], axis=-1)

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """[[0, 1], [−α − 3βx², −δ]], shape (n_traj, 2, 2)."""
        state = np.atleast_2d(state)
        out = np.zeros((state.shape[0], 2, 2))
        out[:, 0, 1] = 1.0
        out[:, 1, 0] = -self.linear_stiffness - 3 * self.cubic_stiffness * state[:, 0] ** 2
        out[:, 1, 1] = -self.damping
        return out

    # ------------------------------------------------------------------ physics
    def energy(self, states: np.ndarray) -> np.ndarray:
        """E = v²/2 + αx²/2 + βx⁴/4 for states (n_traj, ..., 2)."""
        shape = (-1,) + (1,) * (states.ndim - 2)
        a, b = self.linear_stiffness.reshape(shape), self.cubic_stiffness.reshape(shape)
        x2 = states[..., 0] ** 2
        return 0.5 * states[..., 1] ** 2 + 0.5 * a * x2 + 0.25 * b * x2 * x2

    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        return {"energy": self.energy}

    def conserves_invariants(self) -> np.ndarray:
        return (self.damping == 0) & ~self.driven_trajectories

    def equilibria(self) -> dict[str, np.ndarray]:
        """The origin, and x = ±√(−α/β) where α and β have opposite signs (a double well's minima for α < 0 < β,
        saddles for β < 0 < α), in free motion."""
        free = ~self.driven_trajectories
        a, b = self.linear_stiffness, self.cubic_stiffness
        outer = free & (a * b < 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.sqrt(np.where(outer, -a / b, 0.0))
        zero = np.zeros_like(x)
        return {"origin": self._at([0.0, 0.0], free), "x+": self._at(np.stack([x, zero], -1), outer),
                "x-": self._at(np.stack([-x, zero], -1), outer)}

    def characteristic_period(self) -> np.ndarray:
        """2π/Ω of the first drive term for driven motion, else the small-oscillation period about the stable
        equilibrium: 2π/√α for α > 0, 2π/√(−2α) in a double well's minimum, 2π/√|β| (a unit amplitude) at α = 0."""
        a, b = self.linear_stiffness, self.cubic_stiffness
        w2 = np.where(a > 0, a, np.where(a < 0, -2 * a, np.abs(b)))
        with np.errstate(divide="ignore"):
            return 2 * np.pi / np.where(self.driven_trajectories, self.drive_frequency[:, 0], np.sqrt(w2))

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        """``period`` (the backbone curve, against T(E)) for free undamped motion when x is observed."""
        return "period" if "x" in observed and self.conserves_invariants().all() else None

    def _elliptic(self, initial_state: np.ndarray):
        """Per start: regime code (0 cn, 1 sn, 2 dn, −1 no closed form), ω, A, m, 1 − m, and u0."""
        s0 = np.atleast_2d(np.asarray(initial_state, dtype=np.float64))
        x0, v0 = s0[:, 0], s0[:, 1]
        a, b = self.linear_stiffness, self.cubic_stiffness
        e = 0.5 * v0**2 + 0.5 * a * x0**2 + 0.25 * b * x0**4
        s2 = (a + b * x0**2) ** 2 + 2 * b * v0**2
        n = x0.size
        regime = np.full(n, -1)
        regime[(b > 0) & ((a >= 0) | (e > 0)) | (b == 0) & (a > 0)] = 0
        regime[(b < 0) & (a > 0) & (s2 > 0) & (x0 * x0 * -b < a) & (-4 * b * e < a * a)] = 1
        regime[(b > 0) & (a < 0) & (e < 0)] = 2
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.sqrt(s2)
            sma = np.where(a > 0, 4 * b * e / (a + s), s - a)  # s − α, without cancellation for α > 0
            amp2 = np.where(regime == 1, 4 * e / (a + s), np.where(b != 0, sma / b, 2 * e / a))
            omega = np.sqrt(np.select([regime == 0, regime == 1], [s, 0.5 * (a + s)], 0.5 * sma))
            m = np.select([regime == 0, regime == 1], [sma / (2 * s), (a - s) / (a + s)], 2 * s / sma)
            spa = np.where(a < 0, 4 * b * e / sma, s + a)  # s + α, without cancellation for α < 0
            mc = np.select([regime == 0, regime == 1], [spa / (2 * s), 2 * s / (a + s)], -4 * b * e / sma**2)
            amp = np.sqrt(amp2)
            # The initial phase. A² − x0² from the energy, v0² = (A² − x0²)(α + β(A² + x0²)/2), where the plain
            # difference would cancel (near the turning point A).
            gap = amp2 - x0**2
            lever = a + 0.5 * b * (amp2 + x0**2)
            close = np.abs(gap) < 0.5 * amp2
            gap = np.where(close & (lever != 0), v0**2 / np.where(lever != 0, lever, 1), gap)
            gap = np.clip(gap, 0, None) / np.where(amp2 > 0, amp2, 1)  # 1 − (x0/A)²
            ratio = np.where(amp > 0, x0 / np.where(amp > 0, amp, 1), 0.0)
            # cn: cn0 = x0/A, sn0 dn0 = −v0/(Aω).  sn: sn0 = x0/A, cn0 dn0 = v0/(Aω).
            # dn: dn0 = |x0|/A, m sn0 cn0 = −v0/(Aω) sign(x0), with cn0 ≥ 0 (dn has period 2K).
            sn_cn = -np.sign(v0) * np.sqrt(gap)
            sn_sn = np.clip(ratio, -1, 1)
            sn_dn = -np.sign(v0) * np.sign(x0) * np.sqrt(gap / np.where(m > 0, m, 1))
            sn0 = np.select([regime == 0, regime == 1], [sn_cn, sn_sn], sn_dn)
            cn0 = np.select([regime == 0, regime == 1], [ratio, np.sign(v0) * np.sqrt(gap)],
                            np.sqrt(np.clip(1 - sn_dn**2, 0, None)))
            u0 = incomplete_f(sn0, cn0, np.clip(1 - m * sn0**2, 0, None), mc)
        return regime, omega, amp, m, mc, u0

    def period(self, initial_state: ArrayLike) -> np.ndarray:
        """The exact period of free undamped motion from each state (4K/ω, or 2K/ω inside a double well's
        well; NaN without a closed form), shape (n_traj,)."""
        regime, omega, _, _, mc, _ = self._elliptic(initial_state)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(regime < 0, np.nan, np.where(regime == 2, 2, 4) * complete_k(mc) / omega)

    # ------------------------------------------------------------------ exact solution
    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray:
        """The closed form of free undamped motion (see the module docstring), shape (n_traj, n_steps, 2)."""
        t, s0 = self.check_start(initial_state, time)
        if s0.shape[0] != self.n_traj:
            return self.broadcast(s0.shape[0]).exact(s0, t)
        self.check_free("free undamped motion (damping and drive zero)", damping=self.damping)
        regime, omega, amp, m, mc, u0 = self._elliptic(s0)
        if (regime < 0).any():
            i = int(np.flatnonzero(regime < 0)[0])
            raise ValueError(f"the duffing start {s0[i].tolist()} (α = {float(self.linear_stiffness[i])!r}, β = "
                             f"{float(self.cubic_stiffness[i])!r}) is unbounded or outside a well: no closed form; "
                             'use method = "reference"')
        u = omega[:, None] * (t - t[0])[None, :] + u0[:, None]
        sn, cn, dn = jacobi(u, m[:, None], mc[:, None])
        A, w = amp[:, None], omega[:, None]
        sign = np.where(s0[:, 0] < 0, -1.0, 1.0)[:, None]
        x = np.select([regime[:, None] == 0, regime[:, None] == 1], [A * cn, A * sn], sign * A * dn)
        v = np.select([regime[:, None] == 0, regime[:, None] == 1], [-A * w * sn * dn, A * w * cn * dn],
                      -sign * A * w * m[:, None] * sn * cn)
        return np.stack([x, v], axis=-1)
