r"""The Lotka–Volterra predator–prey system: no closed form, truth by the reference, certified by its invariant.

.. math:: \dot x = \alpha x - \beta x y, \qquad \dot y = \delta x y - \gamma y, \qquad s = (x, y),

x the prey and y the predators (both > 0). Every orbit is closed around the equilibrium
:math:`(\gamma/\delta, \alpha/\beta)`, on a level set of the conserved quantity

.. math:: V = \delta x - \gamma \ln x + \beta y - \alpha \ln y,

whose drift along a solution certifies the reference integrator and scores a rollout. Small oscillations about
the equilibrium have the period :math:`2\pi/\sqrt{\alpha\gamma}`; larger ones take longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_real_array, check_bounds
from .params import EnsembleParams, ParamSpec, check_range, fixed, uniform
from .system import PhysicalSystem, register_system

__all__ = ["LotkaVolterra", "LotkaVolterraParams"]

_RATES = ("alpha", "beta", "gamma", "delta")


@dataclass(frozen=True, kw_only=True)
class LotkaVolterraParams(EnsembleParams):
    """Parameter specs of a Lotka–Volterra ensemble (``x0`` prey, ``y0`` predators: the initial state, > 0)."""

    alpha: ParamSpec = fixed(1.0)
    beta: ParamSpec = fixed(1.0)
    gamma: ParamSpec = fixed(1.0)
    delta: ParamSpec = fixed(1.0)
    x0: ParamSpec = uniform(0.5, 2.0)
    y0: ParamSpec = uniform(0.5, 2.0)

    INITIAL_STATE = ("x0", "y0")

    def __post_init__(self) -> None:
        for name in (*_RATES, "x0", "y0"):
            check_range(name, getattr(self, name), low=0.0, strict=True)

    def build(self, values) -> LotkaVolterra:
        return LotkaVolterra(**values)


@register_system
@dataclass(frozen=True, kw_only=True, eq=False)
class LotkaVolterra(PhysicalSystem):
    """An ensemble of predator–prey systems ``x' = αx − βxy``, ``y' = δxy − γy`` (all rates > 0)."""

    alpha: ArrayLike = 1.0
    beta: ArrayLike = 1.0
    gamma: ArrayLike = 1.0
    delta: ArrayLike = 1.0

    system = "lotka-volterra"
    state_names = ("x", "y")
    state_units = ("N", "N")
    PARAMETERS = _RATES
    Params = LotkaVolterraParams
    MODEL_PARAMETERS = _RATES
    # ẋ = α x − β x y, ẏ = δ x y − γ y: quadratic; each rate given multiplies its term.
    LIBRARY_DEGREE = 2
    LIBRARY_PARAMETER_DEGREE = dict.fromkeys(_RATES, 1)

    def __post_init__(self) -> None:
        self.set_parameters(**{name: check_bounds(name, as_real_array(name, getattr(self, name), max_ndim=1),
                                                  low=0.0, strict=True) for name in _RATES})

    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        x, y = state[..., 0], state[..., 1]
        a, b, c, d = self.per_trajectory(state, *_RATES)
        return np.stack([x * (a - b * y), y * (d * x - c)], axis=-1)

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """[[α − βy, −βx], [δy, δx − γ]], shape (n_traj, 2, 2)."""
        state = np.atleast_2d(state)
        x, y = state[:, 0], state[:, 1]
        return np.stack([np.stack([self.alpha - self.beta * y, -self.beta * x], -1),
                         np.stack([self.delta * y, self.delta * x - self.gamma], -1)], axis=1)

    def conserved(self, states: np.ndarray) -> np.ndarray:
        """V = δx − γ ln x + βy − α ln y for states (n_traj, ..., 2)."""
        shape = (-1,) + (1,) * (states.ndim - 2)
        a, b, c, d = (getattr(self, n).reshape(shape) for n in _RATES)
        x, y = states[..., 0], states[..., 1]
        return d * x - c * np.log(x) + b * y - a * np.log(y)

    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        return {"V": self.conserved}

    def conserves_invariants(self) -> np.ndarray:
        return np.ones(self.n_traj, dtype=bool)

    def equilibria(self) -> dict[str, np.ndarray]:
        """Coexistence at (γ/δ, α/β), a centre with frequency √(αγ) (extinction at the origin is left out: V is
        singular there and no orbit comes near it)."""
        return {"coexistence": self._at(np.stack([self.gamma / self.delta, self.alpha / self.beta], -1))}

    def characteristic_period(self) -> np.ndarray:
        """The small-oscillation period 2π/√(αγ) about the equilibrium (γ/δ, α/β)."""
        return 2 * np.pi / np.sqrt(self.alpha * self.gamma)

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        return "invariant_drift" if tuple(observed) == self.state_names else None
