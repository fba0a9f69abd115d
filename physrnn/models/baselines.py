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

    @abstractmethod
    def _jacobian(self, system, t: float, state: np.ndarray, dt: float) -> np.ndarray: ...

    def _step_jacobian(self, data, steps):
        if data.system is None:
            raise ValueError(f"the {self.kind} baseline's Jacobian is the true equations', but these data carry "
                             "no system")
        out = [self._jacobian(data.system, data.time[n], data.states[:, n], data.dt) for n in steps]
        return np.stack(out, axis=1)[:, :, None]  # window 1: (n_traj, n_points, 1, n_state, n_state)

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

    def _jacobian(self, system, t, state, dt):
        return np.broadcast_to(np.eye(state.shape[-1]), state.shape + state.shape[-1:]).copy()


class EulerBaseline(_PhysicsModel):
    kind = "euler"

    def _step(self, system, t, state, dt):
        return state + dt * system.rhs(t, state)

    def _jacobian(self, system, t, state, dt):
        """I + Δt ∂f/∂s(t, s)."""
        return np.eye(state.shape[-1]) + dt * system.jacobian(t, state)


class RK4Baseline(_PhysicsModel):
    kind = "rk4"

    def _step(self, system, t, state, dt):
        return rk4_step(system.rhs, t, state, dt)

    def _jacobian(self, system, t, state, dt):
        """The chain rule through the four stages: with K_i = ∂k_i/∂s, K1 = J(t, s), K2 = J(t + h/2, s + h k1/2)
        (I + h K1/2), K3 = J(t + h/2, s + h k2/2)(I + h K2/2), K4 = J(t + h, s + h k3)(I + h K3), the step's
        Jacobian is I + h (K1 + 2K2 + 2K3 + K4)/6; for ṡ = Ms this is the stability polynomial
        R(hM) = I + hM + (hM)²/2 + (hM)³/6 + (hM)⁴/24."""
        eye = np.eye(state.shape[-1])
        k1 = system.rhs(t, state)
        big1 = system.jacobian(t, state)
        s2 = state + dt / 2 * k1
        k2 = system.rhs(t + dt / 2, s2)
        big2 = system.jacobian(t + dt / 2, s2) @ (eye + dt / 2 * big1)
        s3 = state + dt / 2 * k2
        k3 = system.rhs(t + dt / 2, s3)
        big3 = system.jacobian(t + dt / 2, s3) @ (eye + dt / 2 * big2)
        big4 = system.jacobian(t + dt, state + dt * k3) @ (eye + dt * big3)
        return eye + dt / 6 * (big1 + 2 * big2 + 2 * big3 + big4)


