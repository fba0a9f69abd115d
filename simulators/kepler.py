r"""The planar two-body (Kepler) problem and its exact solution through Kepler's equation.

.. math:: \ddot{\mathbf r} = -\mu\,\mathbf r/|\mathbf r|^3, \qquad s = (x, y, v_x, v_y),

the relative motion of two bodies with :math:`\mu = G(m_1 + m_2)`. Invariants: the energy
:math:`\varepsilon = v^2/2 - \mu/r`, the angular momentum :math:`h = x v_y - y v_x` and the Laplace–Runge–Lenz
vector :math:`\mathbf A = \mathbf v \times \mathbf h - \mu\,\mathbf r/r` (length :math:`\mu e`, pointing at the
periapsis; a rollout's drift of its angle is the spurious precession).

Bound orbits (:math:`\varepsilon < 0`) are solved exactly with Lagrange's f and g functions of the change of
eccentric anomaly :math:`\Delta E`, which need no perifocal frame (so circular orbits are no special case):
with :math:`a = -\mu/(2\varepsilon)`, :math:`n = \sqrt{\mu/a^3}`, :math:`C = e\cos E_0 = 1 - r_0/a` and
:math:`S = e\sin E_0 = \mathbf r_0\cdot\mathbf v_0/\sqrt{\mu a}`, Kepler's equation
:math:`E - e\sin E = M_0 + n t` is solved for E by Newton's method from Danby's start
:math:`E = M + 0.85\,e\,\mathrm{sign}(\sin M)` (safe up to e → 1), and

.. math::

    \mathbf r = f\mathbf r_0 + g\mathbf v_0,\quad \mathbf v = \dot f\mathbf r_0 + \dot g\mathbf v_0,\quad
    f = 1 - \tfrac{a}{r_0}(1 - \cos\Delta E),\quad g = \frac{\sin\Delta E - e\sin E + S}{n},\\
    \dot f = -\frac{\sqrt{\mu a}\,\sin\Delta E}{r\,r_0},\quad \dot g = 1 - \tfrac{a}{r}(1 - \cos\Delta E),\quad
    r = a(1 - e\cos E).

(g is written without the :math:`t - (\Delta E - \sin\Delta E)/n` that cancels over many orbits.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds
from .params import EnsembleParams, ParamSpec, check_range, fixed, uniform
from .system import PhysicalSystem, register_system

__all__ = ["Kepler", "KeplerParams", "elements", "solve_kepler"]


def solve_kepler(mean_anomaly: ArrayLike, eccentricity: ArrayLike) -> np.ndarray:
    """E with E − e sin E = M, for 0 ≤ e < 1 (broadcasting); E − M ∈ [−e, e], continuous in M."""
    m = np.asarray(mean_anomaly, dtype=np.float64)
    e = np.broadcast_to(np.asarray(eccentricity, dtype=np.float64), m.shape)
    turns = np.round(m / (2 * np.pi))
    mr = m - 2 * np.pi * turns  # in [−π, π]
    big = 0.85 * e * np.sign(np.sin(mr))
    E = mr + big
    for _ in range(50):
        step = (E - e * np.sin(E) - mr) / (1 - e * np.cos(E))
        E = E - step
        if np.all(np.abs(step) <= 4e-16 * np.maximum(1.0, np.abs(E))):
            break
    return E + 2 * np.pi * turns


def elements(state: ArrayLike, mu: ArrayLike) -> dict[str, np.ndarray]:
    """Orbital elements of states (..., 4): ``semi_major_axis`` (negative for unbound), ``eccentricity``,
    ``periapsis_angle`` (of the LRL vector), ``energy``, ``angular_momentum``, ``period`` (NaN unless bound)."""
    s = np.asarray(state, dtype=np.float64)
    x, y, vx, vy = (s[..., i] for i in range(4))
    r = np.hypot(x, y)
    h = x * vy - y * vx
    energy = 0.5 * (vx**2 + vy**2) - mu / r
    ax, ay = vy * h - mu * x / r, -vx * h - mu * y / r
    a = -mu / (2 * energy)
    with np.errstate(invalid="ignore"):
        period = np.where(energy < 0, 2 * np.pi * np.sqrt(np.abs(a) ** 3 / mu), np.nan)
    return {"semi_major_axis": a, "eccentricity": np.hypot(ax, ay) / mu, "periapsis_angle": np.arctan2(ay, ax),
            "energy": energy, "angular_momentum": h, "period": period}


@dataclass(frozen=True, kw_only=True)
class KeplerParams(EnsembleParams):
    """Kepler ensembles are drawn as orbital elements: ``semi_major_axis`` a > 0, ``eccentricity`` in [0, 1),
    ``periapsis_angle`` and ``mean_anomaly`` (radians, counter-clockwise orbits)."""

    gravitational_parameter: ParamSpec = fixed(1.0)
    semi_major_axis: ParamSpec = fixed(1.0)
    eccentricity: ParamSpec = uniform(0.0, 0.5)
    periapsis_angle: ParamSpec = uniform(0.0, 2 * np.pi)
    mean_anomaly: ParamSpec = uniform(0.0, 2 * np.pi)

    def __post_init__(self) -> None:
        check_range("gravitational_parameter", self.gravitational_parameter, low=0.0, strict=True)
        check_range("semi_major_axis", self.semi_major_axis, low=0.0, strict=True)
        check_range("eccentricity", self.eccentricity, low=0.0)
        if self.eccentricity.bounds[1] >= 1:
            raise ValueError(f"eccentricity = {self.eccentricity.to_config()!r} reaches 1; bound orbits need e < 1")

    def sample(self, n_traj: int, seed: int):
        v = self.draw(n_traj, seed)
        mu, a, e = v["gravitational_parameter"], v["semi_major_axis"], v["eccentricity"]
        E = solve_kepler(v["mean_anomaly"], e)
        r = a * (1 - e * np.cos(E))
        b = np.sqrt((1 - e) * (1 + e))
        pos = np.stack([a * (np.cos(E) - e), a * b * np.sin(E)], axis=1)
        vel = (np.sqrt(mu * a) / r)[:, None] * np.stack([-np.sin(E), b * np.cos(E)], axis=1)
        c, s = np.cos(v["periapsis_angle"]), np.sin(v["periapsis_angle"])
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], axis=1)  # (n, 2, 2)
        x0 = np.concatenate([np.einsum("nij,nj->ni", rot, pos), np.einsum("nij,nj->ni", rot, vel)], axis=1)
        return Kepler(gravitational_parameter=mu), x0

    def initial_params(self, x0: np.ndarray, system=None) -> dict[str, np.ndarray]:
        """The initial states, and the elements read back from them (eccentricity, period, ...)."""
        out = {f"{name}0": x0[:, i].copy() for i, name in enumerate(Kepler.state_names)}
        if system is not None:
            out.update(elements(x0, system.gravitational_parameter))
        return out


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class Kepler(PhysicalSystem):
    """An ensemble of planar two-body problems ``r'' = −μ r/|r|³``.

    Parameters
    ----------
    gravitational_parameter : float or ndarray of shape (n_traj,)
        μ = G(m1 + m2) > 0.
    """

    gravitational_parameter: ArrayLike = 1.0

    system = "kepler"
    state_names = ("x", "y", "vx", "vy")
    state_units = ("L", "L", "L/T", "L/T")
    PARAMETERS = ("gravitational_parameter",)
    Params = KeplerParams
    OBSERVATIONS = {"full": None, "position": (0, 1)}
    MODEL_PARAMETERS = ("gravitational_parameter",)
    #: Per unit reduced mass: H = |v|²/2 − μ/r.
    CANONICAL = (("x", "y"), ("vx", "vy"))
    #: A central force: rotating position and velocity together rotates the orbit.
    ROTATIONS = (("x", "y"), ("vx", "vy"))
    # v̇ = −μ r/r³: linear in (x, y, vx, vy, x/r³, y/r³), which no polynomial in x and y holds.
    LIBRARY_DEGREE = 1
    LIBRARY_PARAMETER_DEGREE = {"gravitational_parameter": 1}

    @classmethod
    def library_terms(cls):
        """x/r³ and y/r³: the central force's components."""
        def component(i):
            return lambda s, xp=np: s[..., i] / xp.hypot(s[..., 0], s[..., 1]) ** 3
        return {"x/r^3": component(0), "y/r^3": component(1)}

    def __post_init__(self) -> None:
        mu = check_bounds("gravitational_parameter", as_real_array(
            "gravitational_parameter", self.gravitational_parameter, max_ndim=1), low=0.0, strict=True)
        self.set_parameters(gravitational_parameter=mu)

    def _mu(self, state: np.ndarray) -> np.ndarray:
        return self.gravitational_parameter[0] if state.ndim == 1 else self.gravitational_parameter

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        x, y = state[..., 0], state[..., 1]
        k = -self._mu(state) / np.hypot(x, y) ** 3
        return np.stack([state[..., 2], state[..., 3], k * x, k * y], axis=-1)

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """[[0, I], [μ(3 r rᵀ − r² I)/r⁵, 0]], shape (n_traj, 4, 4)."""
        state = np.atleast_2d(state)
        r = state[:, :2]
        r2 = np.sum(r * r, axis=1)
        mu = self.gravitational_parameter[:, None, None]
        out = np.zeros((state.shape[0], 4, 4))
        out[:, 0, 2] = out[:, 1, 3] = 1.0
        out[:, 2:, :2] = mu * (3 * r[:, :, None] * r[:, None, :] - r2[:, None, None] * np.eye(2)) \
            / (r2**2.5)[:, None, None]
        return out

    # ------------------------------------------------------------------ physics
    def _shape(self, states: np.ndarray) -> np.ndarray:
        return self.gravitational_parameter.reshape((-1,) + (1,) * (states.ndim - 2))

    def energy(self, states: np.ndarray) -> np.ndarray:
        """ε = v²/2 − μ/r for states (n_traj, ..., 4)."""
        return 0.5 * (states[..., 2] ** 2 + states[..., 3] ** 2) - self._shape(states) / np.hypot(
            states[..., 0], states[..., 1])

    def angular_momentum(self, states: np.ndarray) -> np.ndarray:
        """h = x v_y − y v_x."""
        return states[..., 0] * states[..., 3] - states[..., 1] * states[..., 2]

    def lrl(self, states: np.ndarray) -> np.ndarray:
        """The Laplace–Runge–Lenz vector v × h − μ r/r, shape (n_traj, ..., 2)."""
        h = self.angular_momentum(states)
        mu_r = self._shape(states) / np.hypot(states[..., 0], states[..., 1])
        return np.stack([states[..., 3] * h - mu_r * states[..., 0], -states[..., 2] * h - mu_r * states[..., 1]],
                        axis=-1)

    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        return {"energy": self.energy, "angular_momentum": self.angular_momentum,
                "lrl_x": lambda s: self.lrl(s)[..., 0], "lrl_y": lambda s: self.lrl(s)[..., 1]}

    def conserves_invariants(self) -> np.ndarray:
        return np.ones(self.n_traj, dtype=bool)

    def characteristic_period(self, states: np.ndarray | None = None) -> np.ndarray:
        """The orbital period 2π √(a³/μ) of each state's orbit (of a unit orbit, 2π/√μ, without states)."""
        if states is None:
            return 2 * np.pi / np.sqrt(self.gravitational_parameter)
        return elements(states, self.gravitational_parameter)["period"]

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        return "kepler" if tuple(observed) == self.state_names else None

    # ------------------------------------------------------------------ exact solution
    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray:
        """Bound orbits by Kepler's equation and the f and g functions (module docstring), (n_traj, n_steps, 4)."""
        t, s0 = self.check_start(initial_state, time)
        if s0.shape[0] != self.n_traj:
            return self.broadcast(s0.shape[0]).exact(s0, t)
        mu = self.gravitational_parameter
        r0v, v0v = s0[:, :2], s0[:, 2:]
        r0 = np.hypot(r0v[:, 0], r0v[:, 1])
        energy = 0.5 * np.sum(v0v * v0v, axis=1) - mu / r0
        if (energy >= 0).any():
            i = int(np.flatnonzero(energy >= 0)[0])
            raise ValueError(f"the kepler start {s0[i].tolist()} is not bound (energy {energy[i]:.3g} >= 0): no "
                             'closed form here; use method = "reference"')
        a = -mu / (2 * energy)
        n = np.sqrt(mu / a**3)
        C = 1 - r0 / a
        S = np.sum(r0v * v0v, axis=1) / np.sqrt(mu * a)
        e = np.hypot(C, S)
        E0 = np.arctan2(S, C)
        M = (E0 - S)[:, None] + n[:, None] * (t - t[0])[None, :]
        E = solve_kepler(M, e[:, None])
        dE = E - E0[:, None]
        cos_d, sin_d = np.cos(dE), np.sin(dE)
        a_, r0_, n_ = a[:, None], r0[:, None], n[:, None]
        r = a_ * (1 - C[:, None] * cos_d + S[:, None] * sin_d)  # a(1 − e cos E), e cos E = C cos ΔE − S sin ΔE
        f = 1 - a_ / r0_ * (1 - cos_d)
        g = (sin_d - (S[:, None] * cos_d + C[:, None] * sin_d) + S[:, None]) / n_  # e sin E = S cos ΔE + C sin ΔE
        fdot = -np.sqrt(mu * a)[:, None] * sin_d / (r * r0_)
        gdot = 1 - a_ / r * (1 - cos_d)
        pos = f[..., None] * r0v[:, None, :] + g[..., None] * v0v[:, None, :]
        vel = fdot[..., None] * r0v[:, None, :] + gdot[..., None] * v0v[:, None, :]
        return np.concatenate([pos, vel], axis=-1)
