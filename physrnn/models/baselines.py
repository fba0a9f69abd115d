"""Physics baselines: no change, or one Euler / RK4 step of the *true* equations at the same Δt.

They share the model interface (``fit`` learns nothing) and import no TensorFlow.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from simulators.integrate import rk4_step

from .base import StepModel, diverging

__all__ = ["EulerBaseline", "Persistence", "RK4Baseline"]


class _PhysicsModel(StepModel):
    """Steps the true system from the true state at the end of the context.

    The baselines know the equations, so they are handed the whole true state there even under partial
    observation (a position-only study compares its models with the physics observed the same way).
    """

    learns = False

    def _fit(self, train, validation, **options):
        pass  # nothing to learn

    @abstractmethod
    def _step(self, system, t: float, state: np.ndarray, dt: float) -> np.ndarray: ...

    def _rollout(self, data, context, n_steps, bound):
        if data.system is None:
            raise ValueError(f"the {self.kind} baseline steps the true equations, but these data carry no system "
                             "(they were built from arrays); build them from a trajectory file or a simulation")
        n = data.n_traj
        out = np.full((n, n_steps, data.n_obs), np.nan)
        out[:, :context] = data.observed[:, :context]
        state = data.states[:, context - 1].copy()
        alive = np.ones(n, dtype=bool)
        diverged_at = np.full(n, -1)
        with np.errstate(all="ignore"):
            for i in range(context, n_steps):
                state = self._step(data.system, data.time[i - 1], state, data.dt)
                bad = alive & diverging(np, state, bound)
                diverged_at[bad] = i
                alive &= ~bad
                state[~alive] = 0.0
                out[alive, i] = state[alive, : data.n_obs]
        return out, diverged_at


class Persistence(_PhysicsModel):
    kind = "persistence"

    def _step(self, system, t, state, dt):
        return state


class EulerBaseline(_PhysicsModel):
    kind = "euler"

    def _step(self, system, t, state, dt):
        return state + dt * system.rhs(t, state)


class RK4Baseline(_PhysicsModel):
    kind = "rk4"

    def _step(self, system, t, state, dt):
        return rk4_step(system.rhs, t, state, dt)


