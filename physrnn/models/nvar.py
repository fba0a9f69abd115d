"""Next-generation reservoir computing (NVAR): a ridge readout on a delay embedding of the inputs and its
unique monomials (Gauthier, Bollt, Griffith & Barbosa, *Nat. Commun.* 12:5564, 2021).

With inputs u_i = (o_i, known_i) (each angle as its cosine and sine), the linear part of the feature vector is
the delay embedding ``lin_i = (u_i, u_{i−s}, …, u_{i−(k−1)s})``, the nonlinear part its unique monomials of
degree p, and the readout the Euler-style increment ``g = (o_{i+1} − o_i)/Δt = W · (lin_i, monomials) + b``,
fitted by ridge regression in float64 on the raw features (as the paper and reservoirpy do; ``b`` is the
constant term, left unpenalised). Rescaling the target by 1/Δt rescales both terms of the ridge objective alike,
so the weights are the paper's, whose target is the difference o_{i+1} − o_i.

The ridge is chosen, unless given, on the closed-loop error of the validation trajectories: every candidate's
rollout runs in one batched loop. A one-step residual cannot choose it: on Lorenz-63 the ridge with the least
validation residual diverges in closed loop.

Fitted in NumPy in well under a second on the studies' data, saved and loaded without TensorFlow. A closed
loop of :data:`COMPILED_STEPS` steps or more (the diagnostics' long runs) runs in the compiled XLA loop of the
network kinds (:func:`~physrnn.models.rollout.windowed_rollout`, about a second to compile); shorter ones, such
as the ridge's validation loops over every candidate at once, in NumPy.
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import numpy as np

from simulators._validation import check_memory

from ..data import angle_columns, angle_features
from .base import StepModel, diverging
from .configs import NVARConfig
from .selection import choose_on_closed_loops, validation_needed

__all__ = ["COMPILED_STEPS", "NVAR", "monomial_indices"]

#: Closed loops of at least this many steps run compiled (XLA), shorter ones in NumPy.
COMPILED_STEPS = 2000


def monomial_indices(n: int, order: int) -> np.ndarray:
    """The index tuples of the unique monomials of degree ``order`` in ``n`` variables, (n_monomials, order), in
    the paper's order (i ≤ j ≤ …: x0², x0 x1, …, x1², …)."""
    return np.array(list(combinations_with_replacement(range(n), order)), dtype=np.int64).reshape(-1, order)


class _RidgePath:
    """Ridge solutions ``y ≈ x W + b`` for any ridge from one SVD of the centred features:
    W(α) = V diag(σ / (σ² + α)) Uᵀ y_c, as stable as the QR of the stacked problem, and every α of a grid costs
    one product. Singular values below the rounding of the largest are dropped (the minimum-norm solution at
    α = 0)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, constant: bool) -> None:
        self.x_mean = x.mean(axis=0) if constant else np.zeros(x.shape[1])
        self.y_mean = y.mean(axis=0) if constant else np.zeros(y.shape[1])
        u, self.s, self.vt = np.linalg.svd(x - self.x_mean, full_matrices=False)
        self.projected = u.T @ (y - self.y_mean)
        self.cutoff = self.s[0] * max(x.shape) * np.finfo(np.float64).eps  # (fit refuses data with no rows)

    def solve(self, ridge: float) -> tuple[np.ndarray, np.ndarray]:
        keep = self.s > self.cutoff
        factor = np.where(keep, self.s / np.where(keep, self.s**2 + ridge, 1.0), 0.0)
        kernel = self.vt.T @ (factor[:, None] * self.projected)
        return kernel, self.y_mean - self.x_mean @ kernel


class NVAR(StepModel):
    """A ridge readout of the increment on a constant, a delay embedding and its monomials (see the module)."""

    kind = "nvar"
    config_class = NVARConfig

    kernel_: np.ndarray  # (n_features, n_obs)
    intercept_: np.ndarray  # (n_obs,)

    # -- features
    @property
    def _lags(self) -> np.ndarray:
        return np.arange(self.config.delay) * self.config.skip

    def _inputs(self, observed: np.ndarray, known: np.ndarray) -> np.ndarray:
        """u = (o, known) with each angle as (cos, sin), (..., n_in)."""
        known = np.broadcast_to(known, observed.shape[:-1] + known.shape[-1:])
        return angle_features(np.concatenate([observed, known], axis=-1), self._angle_columns)

    def _features(self, lin: np.ndarray) -> np.ndarray:
        """(lin, its monomials of degree p) for delay embeddings ``lin`` (..., n_lin)."""
        if self.config.order == 1:
            return lin
        return np.concatenate([lin, np.prod(lin[..., self._monomials], axis=-1)], axis=-1)

    def _feature_jacobian(self, lin: np.ndarray) -> np.ndarray:
        """∂features/∂lin, (..., n_features, n_lin): the identity, then the product rule for each monomial."""
        n_lin = lin.shape[-1]
        eye = np.broadcast_to(np.eye(n_lin), lin.shape[:-1] + (n_lin, n_lin))
        if self.config.order == 1:
            return eye.copy()
        factors = lin[..., self._monomials]  # (..., n_monomials, p)
        jac = np.zeros(lin.shape[:-1] + (len(self._monomials), n_lin))
        for m in range(self.config.order):
            others = np.prod(np.delete(factors, m, axis=-1), axis=-1)
            jac += others[..., None] * np.eye(n_lin)[self._monomials[:, m]]
        return np.concatenate([eye, jac], axis=-2)

    def _input_jacobian(self, observed: np.ndarray, n_known: int) -> np.ndarray:
        """∂u/∂o at observed states (..., n_obs): (..., n_in, n_obs), in :func:`angle_features`' column order."""
        n_obs = observed.shape[-1]
        angles = list(self._angle_columns)
        keep = [c for c in range(n_obs + n_known) if c not in angles]
        rows = [np.broadcast_to(np.eye(n_obs)[c] if c < n_obs else np.zeros(n_obs), observed.shape) for c in keep]
        rows += [-np.sin(observed[..., [a]]) * np.eye(n_obs)[a] for a in angles]
        rows += [np.cos(observed[..., [a]]) * np.eye(n_obs)[a] for a in angles]
        return np.stack(rows, axis=-2)

    # -- fitting
    def uses_validation(self) -> bool:
        return self.config.ridge < 0  # the ridge chosen on the validation closed loops

    def _fit(self, train, validation, **options):
        cfg = self.config
        self._angle_columns = angle_columns(cfg.angles, train.state_names)
        span = self.min_context
        u = self._inputs(train.observed, train.known)
        n_traj, n_steps, n_in = u.shape
        if n_steps <= span:
            raise ValueError(f"the training trajectories have {n_steps} steps, too few for the NVAR's taps spanning "
                             f"{span}; lengthen them or lower delay or skip")
        self._monomials = monomial_indices(cfg.delay * n_in, cfg.order)
        n_features = cfg.delay * n_in + (len(self._monomials) if cfg.order > 1 else 0)
        rows = n_traj * (n_steps - span)
        check_memory(3 * 8.0 * rows * n_features, f"order = {cfg.order} with delay = {cfg.delay} ({n_features} "
                     f"features of {rows} training rows)", "choose a lower order, fewer taps or fewer trajectories")
        lin = np.concatenate([u[:, span - 1 - lag:n_steps - 1 - lag] for lag in self._lags], axis=-1)
        x = self._features(lin).reshape(rows, n_features)
        y = train.targets[:, span - 1:].reshape(rows, -1)
        path = _RidgePath(x, y, constant=cfg.constant)
        if cfg.ridge >= 0:
            ridge, history = cfg.ridge, {}
        else:
            if validation is None:
                raise validation_needed(self.kind, "ridge", 1e-6)
            ridge, history = self._choose_ridge(path, validation, scale=train.observed.reshape(-1, train.n_obs))
        self.kernel_, self.intercept_ = path.solve(ridge)
        residual = x @ self.kernel_ + self.intercept_ - y
        self.history_ = {**history, "ridge": [float(ridge)], "train_mse": [float(np.mean(residual**2))]}

    def _choose_ridge(self, path: _RidgePath, validation, *, scale: np.ndarray) -> tuple[float, dict]:
        """The ridge of ``config.ridges`` chosen on the validation trajectories' closed loops
        (:func:`~physrnn.models.selection.choose_on_closed_loops`), every candidate rolled out in one batch."""
        cfg = self.config
        solutions = [path.solve(r) for r in cfg.ridges]
        kernel, intercept = np.stack([k for k, _ in solutions]), np.stack([b for _, b in solutions])
        context = self.min_context
        total = validation.observed.shape[1]
        if total <= context:
            raise ValueError(f"the validation trajectories have {total} steps, too few for a closed loop after the "
                             f"NVAR's {context} context steps")
        n_steps = total if not cfg.select_steps else min(total, context + cfg.select_steps)
        observed, _ = self._closed_loop(kernel, intercept, validation, context, n_steps, self.bound_)
        return choose_on_closed_loops(observed, validation.observed, context, np.std(scale, axis=0), cfg.ridges,
                                      "ridge")

    # -- the closed loop
    def _closed_loop(self, kernel: np.ndarray, intercept: np.ndarray, data, context: int, n_steps: int,
                     bound: float) -> tuple[np.ndarray, np.ndarray]:
        """Roll out with each readout of a batch (kernel (C, n_features, n_obs), intercept (C, n_obs)):
        observed (C, n_traj, n_steps, n_obs), NaN after a divergence, and diverged_at (C, n_traj)."""
        batch, n, n_obs = kernel.shape[0], data.n_traj, data.n_obs
        lags = self._lags
        observed = np.full((batch, n, n_steps, n_obs), np.nan)
        observed[:, :, :context] = data.observed[None, :, :context]
        inputs = self._inputs(data.observed[:, :context], data.known[:, :context])
        u = np.full((batch, n, n_steps, inputs.shape[-1]), np.nan)
        u[:, :, :context] = inputs[None]
        state = observed[:, :, context - 1].copy()
        alive = np.ones((batch, n), dtype=bool)
        diverged_at = np.full((batch, n), -1)
        with np.errstate(all="ignore"):
            for i in range(context, n_steps):
                lin = u[:, :, i - 1 - lags].reshape(batch, n, -1)
                g = np.einsum("cnf,cfo->cno", self._features(lin), kernel) + intercept[:, None]
                state = state + data.dt * g
                bad = alive & diverging(np, state, bound)
                diverged_at[bad] = i
                alive &= ~bad
                state[~alive] = np.nan
                observed[:, :, i] = state
                u[:, :, i] = self._inputs(state, data.known[:, i])
        return observed, diverged_at

    def _rollout(self, data, context, n_steps, bound):
        if n_steps - context >= COMPILED_STEPS:
            from .rollout import windowed_rollout

            return windowed_rollout(self._compiled_step(data.observed.shape[-1] + data.known.shape[-1]), data,
                                    self.min_context, context, n_steps, self.dt_, bound, "float64")
        observed, diverged_at = self._closed_loop(self.kernel_[None], self.intercept_[None], data, context, n_steps,
                                                  bound)
        return observed[0], diverged_at[0]

    def _compiled_step(self, n_in: int):
        """g of a window of raw inputs (batch, span, n_in), in TensorFlow: the same features as :meth:`_inputs`
        and :meth:`_features` (taps newest first, each angle as its cosine and sine appended, the monomials)."""
        import tensorflow as tf

        kernel, intercept = tf.constant(self.kernel_), tf.constant(self.intercept_)
        taps = tf.constant(self.min_context - 1 - self._lags)
        angles = list(self._angle_columns)
        keep = [c for c in range(n_in) if c not in angles]
        monomials = tf.constant(self._monomials) if self.config.order > 1 else None

        def step(window, training=False):  # called as a Keras network is
            x = tf.gather(window, taps, axis=1)  # (batch, delay, n_in)
            if angles:
                a = tf.gather(x, angles, axis=-1)
                x = tf.concat([tf.gather(x, keep, axis=-1), tf.cos(a), tf.sin(a)], axis=-1)
            lin = tf.reshape(x, [tf.shape(x)[0], -1])
            if monomials is not None:
                lin = tf.concat([lin, tf.reduce_prod(tf.gather(lin, monomials, axis=1), axis=-1)], axis=-1)
            return tf.matmul(lin, kernel) + intercept

        return step

    def _step_jacobian(self, data, steps):
        span, n_obs = self.min_context, data.n_obs
        u = self._inputs(data.observed, data.known)
        n_in = u.shape[-1]
        out = np.zeros((data.n_traj, len(steps), span, n_obs, n_obs))
        for i, n in enumerate(steps):
            lin = u[:, n - self._lags].reshape(data.n_traj, -1)
            dg = np.einsum("fo,tfd->tod", self.kernel_, self._feature_jacobian(lin))  # (n_traj, n_obs, n_lin)
            for j, lag in enumerate(self._lags):
                du = self._input_jacobian(data.observed[:, n - lag], data.n_known)  # (n_traj, n_in, n_obs)
                out[:, i, span - 1 - lag] = data.dt * dg[:, :, j * n_in:(j + 1) * n_in] @ du
            out[:, i, span - 1] += np.eye(n_obs)
        return out

    # -- persistence
    def _arrays(self):
        return {"kernel": self.kernel_, "intercept": self.intercept_, "monomials": self._monomials,
                "angle_columns": np.asarray(self._angle_columns, dtype=np.int64)}

    def _restore_arrays(self, arrays):
        self.kernel_, self.intercept_ = arrays["kernel"], arrays["intercept"]
        self._monomials = arrays["monomials"]
        self._angle_columns = tuple(int(c) for c in arrays["angle_columns"])
