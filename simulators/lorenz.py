r"""Lorenz's 1963 convection model: no closed form, truth by the certified reference, chaotic at the classic
parameters.

.. math:: \dot x = \sigma (y - x), \qquad \dot y = x (\rho - z) - y, \qquad \dot z = x y - \beta z,

with σ = 10, ρ = 28, β = 8/3 by default (Lorenz, *J. Atmos. Sci.* 20:130, 1963). For ρ > 1 the origin is a
saddle and C± = (±√(β(ρ−1)), ±√(β(ρ−1)), ρ − 1) are foci, unstable for ρ > σ(σ + β + 3)/(σ − β − 1) = 24.74
at σ = 10, β = 8/3; the orbit winds about one and then the other. Its largest Lyapunov exponent at the classic
parameters is λ1 ≈ 0.906 (a Lyapunov time of 1.10), the benchmark of Gauthier et al.'s next-generation reservoir
computing (*Nat. Commun.* 12:5564, 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds
from .params import EnsembleParams, ParamSpec, check_range, fixed, uniform
from .system import PhysicalSystem, register_system

__all__ = ["Lorenz63", "Lorenz63Params"]

_PARAMETERS = ("sigma", "rho", "beta")


@dataclass(frozen=True, kw_only=True)
class Lorenz63Params(EnsembleParams):
    """Parameter specs of a Lorenz-63 ensemble (``x0``, ``y0``, ``z0``: the initial state)."""

    sigma: ParamSpec = fixed(10.0)
    rho: ParamSpec = fixed(28.0)
    beta: ParamSpec = fixed(8.0 / 3.0)
    x0: ParamSpec = uniform(-15.0, 15.0)
    y0: ParamSpec = uniform(-20.0, 20.0)
    z0: ParamSpec = uniform(5.0, 40.0)

    INITIAL_STATE = ("x0", "y0", "z0")

    def __post_init__(self) -> None:
        for name in _PARAMETERS:
            check_range(name, getattr(self, name), low=0.0, strict=True)

    def build(self, values) -> Lorenz63:
        return Lorenz63(**values)


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class Lorenz63(PhysicalSystem):
    """An ensemble of Lorenz-63 systems (σ, ρ, β > 0)."""

    sigma: ArrayLike = 10.0
    rho: ArrayLike = 28.0
    beta: ArrayLike = 8.0 / 3.0

    system = "lorenz63"
    state_names = ("x", "y", "z")
    state_units = ("1", "1", "1")
    PARAMETERS = _PARAMETERS
    Params = Lorenz63Params
    MODEL_PARAMETERS = _PARAMETERS
    # Quadratic (x z, x y); each parameter given multiplies a term.
    LIBRARY_DEGREE = 2
    LIBRARY_PARAMETER_DEGREE = dict.fromkeys(_PARAMETERS, 1)

    def __post_init__(self) -> None:
        self.set_parameters(**{name: check_bounds(name, as_real_array(name, getattr(self, name), max_ndim=1),
                                                  low=0.0, strict=True) for name in _PARAMETERS})

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        x, y, z = state[..., 0], state[..., 1], state[..., 2]
        s, r, b = self.per_trajectory(state, *_PARAMETERS)
        return np.stack([s * (y - x), x * (r - z) - y, x * y - b * z], axis=-1)

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """[[−σ, σ, 0], [ρ − z, −1, −x], [y, x, −β]], shape (n_traj, 3, 3)."""
        state = np.atleast_2d(state)
        x, y, z = state[:, 0], state[:, 1], state[:, 2]
        zero, one = np.zeros_like(x), np.ones_like(x)
        return np.stack([np.stack([-self.sigma * one, self.sigma * one, zero], -1),
                         np.stack([self.rho - z, -one, -x], -1),
                         np.stack([y, x, -self.beta * one], -1)], axis=1)

    def equilibria(self) -> dict[str, np.ndarray]:
        """The origin, and C± = (±√(β(ρ−1)), ±√(β(ρ−1)), ρ − 1) where ρ > 1."""
        c = np.sqrt(np.maximum(self.beta * (self.rho - 1), 0.0))
        beyond = self.rho > 1
        return {"origin": self._at(np.zeros(3)),
                "C+": self._at(np.stack([c, c, self.rho - 1], -1), beyond),
                "C-": self._at(np.stack([-c, -c, self.rho - 1], -1), beyond)}

    def characteristic_period(self) -> np.ndarray:
        """2π/ω of the rotation about C± (the complex pair λ = μ ± iω of the Jacobian there; 0.616 at the
        classic parameters), or 2π where ρ ≤ 1 and there is no C±. On the attractor successive maxima of z come
        22 % apart more slowly (0.751 on average), the orbit spending time away from the foci."""
        periods = np.full(self.n_traj, 2 * np.pi)
        point = self.equilibria()["C+"]
        for i in np.flatnonzero(self.rho > 1):
            eig = np.linalg.eigvals(self.take(slice(i, i + 1)).jacobian(0.0, point[i:i + 1])[0])
            if np.abs(eig.imag).max() > 0:
                periods[i] = 2 * np.pi / np.abs(eig.imag).max()
        return periods

    def may_be_chaotic(self) -> bool:
        return True
