"""Levenberg–Marquardt for the small step networks, matrix-free: Gauss–Newton steps solved by conjugate gradients.

The loss of a step model is a sum of squared residuals, ``L(θ) = ½‖r(θ)‖²`` (the trainer's per-step errors in
units of the increment's spread, over the training windows and the rollout horizon). Each iteration solves the
damped Gauss–Newton system

    (JᵀJ + λI) p = −Jᵀr,        J = ∂r/∂θ,

for the step p, and takes it if ``ρ = (L(θ) − L(θ + p)) / (L(θ) − m(p))`` is positive, where
``m(p) = ½‖r + Jp‖²`` is the quadratic model the step minimises. λ follows Nielsen's rule (Madsen, Nielsen &
Tingleff, *Methods for non-linear least squares problems*, 2004, eq. 3.16): divided by up to 3 after a good
step, multiplied by ν = 2, 4, 8, … after each rejected one.

Why matrix-free. A GRU of 32 units has about 3.7 × 10³ weights; the benchmark's training set gives 3.2 × 10⁴
residuals. Forming JᵀJ costs n_residuals × n_weights² ≈ 4 × 10¹¹ flops per iteration (about 7 s on 2 cores,
measured with a 4000-window subsample: Jacobian 2.1 s, JᵀJ 2.8 s, Cholesky 1.1 s), while one product
``JᵀJ v`` (a forward-mode JVP and a reverse-mode VJP through the network) costs about 0.05 s on a quarter of
the windows. So the system is solved by preconditioned conjugate gradients (truncated, "Hessian-free":
Martens, ICML 2010):

- the gradient Jᵀr and the loss use every training window; the curvature products use every k-th window,
  about half as many residuals as weights and at least 1024 windows. The windows of a trajectory are smooth
  and strongly correlated, so a strided subsample keeps the curvature; its JᵀJ is rank-deficient, which the
  damping and the truncated CG absorb. Measured on the benchmark's validation loss, this subsample against
  one with twice as many residuals as weights: the GRU reaches 1e-7 in 18 s instead of 32 s, the LSTM in 16 s
  instead of 36 s, and both end at the same loss;
- the preconditioner is ``(diag JᵀJ + λ)^¾`` (Martens' choice), with the diagonal estimated as the mean of
  (Jᵀu)² over random sign vectors u (unbiased and never negative), refreshed every ``DIAGONAL_EVERY``
  iterations. The exact diagonal from per-window Jacobians preconditions no better and its vectorised
  Jacobian costs 3 s to trace, a tenth of the benchmark's time budget;
- CG starts from half the last accepted step and stops after ``cg_steps`` iterations or at a relative residual
  of 1e-5. Its loop is Python around one traced product function (tracing a ``while`` loop of products costs
  another 4 s; the loop's own overhead is about 1 ms per 25 ms product).

The recurrent layers are unrolled while the trainer runs: TensorFlow's forward-mode accumulator does not
differentiate through the ``while`` loop of a rolled recurrent layer.

Every iteration evaluates the validation loss; the weights with the lowest are kept, and training stops when it
has not improved for ``patience`` iterations (or at ``steps``).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import keras
import numpy as np
import tensorflow as tf

__all__ = ["levenberg_marquardt"]

DIAGONAL_EVERY = 10  # iterations between refreshes of the preconditioner's diagonal
DIAGONAL_PROBES = 16  # random probes averaged into that diagonal (relative spread about √(2/16) ≈ 0.35)
CURVATURE_ROWS_PER_WEIGHT = 0.5  # the curvature subsample keeps about this many residuals per weight
CURVATURE_MIN_WINDOWS = 1024  # and at least this many windows (all of them, if there are fewer)
CG_TOLERANCE = 1e-5  # relative residual at which conjugate gradients stop
IMPROVEMENT = 1e-3  # a validation loss counts as better when it is lower by this fraction


@contextmanager
def _unrolled(network: keras.Model):
    """Unroll the network's recurrent layers for the duration (forward mode cannot go through ``while``)."""
    layers = [layer for layer in network.layers if isinstance(layer, keras.layers.RNN)]
    before = [layer.unroll for layer in layers]
    for layer in layers:
        layer.unroll = True
    try:
        yield
    finally:
        for layer, value in zip(layers, before):
            layer.unroll = value


class _Problem:
    """The residual vector r(θ) of a step trainer on one dataset, as a function of the flat weight vector θ."""

    def __init__(self, trainer, network: keras.Model):
        self.trainer, self.network = trainer, network
        variables = network.trainable_variables
        self.shapes = [tuple(v.shape) for v in variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.n_weights = sum(self.sizes)
        self.fixed = [tf.constant(np.asarray(v), dtype=v.dtype) for v in network.non_trainable_variables]

    def unflatten(self, theta):
        return [tf.reshape(part, shape) for part, shape in zip(tf.split(theta, self.sizes), self.shapes)]

    def residuals(self, theta, x, y, n_total):
        """r with ‖r‖² = the trainer's loss (the mean over windows, horizon and outputs), normalised by
        ``n_total`` windows (a subsample normalised by its own size estimates the whole set's JᵀJ)."""
        weights = self.unflatten(theta)

        def call(window):
            return self.network.stateless_call(weights, self.fixed, window, training=False)[0]

        errors = self.trainer.horizon_errors(call, x, y)  # (batch, horizon, n_obs), in increment spreads
        count = tf.cast(n_total * errors.shape[1] * errors.shape[2], errors.dtype)
        return tf.reshape(errors, [-1]) / tf.sqrt(count)


def preconditioner(diagonal, damping):
    """CG's diagonal preconditioner, ``(diag JᵀJ + λ)^(−¾)``: Martens' choice (ICML 2010), a power between
    Jacobi's 1 and none (see the module docstring)."""
    return 1.0 / (diagonal + damping) ** 0.75


def _flat_weights(network, dtype) -> tf.Tensor:
    return tf.constant(np.concatenate([np.asarray(v, np.float64).ravel() for v in network.trainable_variables]),
                       dtype=dtype)


def _strided(x, y, count):
    stride = max(1, len(x) // max(1, count))
    return x[::stride], y[::stride]


def levenberg_marquardt(trainer, train, val, *, steps: int, patience: int, dtype: str, cg_steps: int = 30,
                        verbose=0, callbacks=()) -> dict[str, list[float]]:
    """Train ``trainer.network`` by matrix-free Levenberg–Marquardt; returns the per-iteration history.

    ``train`` and ``val`` are (windows, targets) arrays of the trainer's one-step or horizon loss; ``val`` may
    be None (the training loss then decides the stop). The network ends with the weights of the lowest
    validation loss. ``callbacks`` are Keras callbacks: each gets ``on_epoch_end(iteration, logs)``.
    """
    if dtype != "float64":
        raise ValueError(f"Levenberg–Marquardt runs in float64, got precision = {dtype!r}; "
                         "set precision = 'float64' or refine = 'lbfgs'")
    network = trainer.network
    with _unrolled(network):
        return _run(trainer, network, train, val, steps=steps, cg_steps=cg_steps, patience=patience,
                    dtype=dtype, verbose=verbose, callbacks=list(callbacks or []))


def _run(trainer, network, train, val, *, steps, cg_steps, patience, dtype, verbose, callbacks):
    problem = _Problem(trainer, network)
    n_weights = problem.n_weights
    x, y = (tf.constant(a, dtype) for a in train)
    n = int(x.shape[0])
    rows_per_window = int(np.prod(y.shape[1:]))
    curvature_windows = max(CURVATURE_MIN_WINDOWS, math.ceil(CURVATURE_ROWS_PER_WEIGHT * n_weights / rows_per_window))
    xc, yc = (tf.constant(a, dtype) for a in _strided(*train, curvature_windows))
    xv, yv = (tf.constant(a, dtype) for a in (val if val is not None else train))
    n_val = int(xv.shape[0])

    def loss(theta, xa, ya, count):  # the trainer's loss, Σr² = 2L
        r = problem.residuals(theta, xa, ya, count)
        return tf.reduce_sum(r * r)

    @tf.function
    def loss_and_gradient(theta):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            value = loss(theta, x, y, n)
        return value, 0.5 * tape.gradient(value, theta)  # ∇L = Jᵀr

    @tf.function
    def train_loss(theta):
        return loss(theta, x, y, n)

    @tf.function
    def val_loss(theta):
        return loss(theta, xv, yv, n_val)

    @tf.function
    def products(theta, v, u):
        """Jᵀ(Jv + u) on the curvature subsample (scaled to the whole set): JᵀJv for u = 0, Jᵀu for v = 0.
        One traced function serves both, so the first iteration traces the network's derivatives once."""
        with tf.GradientTape() as tape:
            tape.watch(theta)
            with tf.autodiff.ForwardAccumulator(theta, v) as acc:
                r = problem.residuals(theta, xc, yc, int(xc.shape[0]))
            jv = tf.stop_gradient(acc.jvp(r))
        return tape.gradient(r, theta, output_gradients=jv + u)

    n_rows = int(np.prod(yc.shape)) if len(yc.shape) else 0
    probe_rng = np.random.default_rng(0)  # fixed: the probes are part of the method, not of the data

    def diagonal(theta):
        """diag JᵀJ = E[(Jᵀu)²] over Rademacher u (every estimate ≥ 0), averaged over ``DIAGONAL_PROBES``."""
        zero = tf.zeros_like(theta)
        total = tf.zeros_like(theta)
        for _ in range(DIAGONAL_PROBES):
            u = tf.constant(probe_rng.choice([-1.0, 1.0], n_rows), dtype)
            total += tf.square(products(theta, zero, u))
        return total / DIAGONAL_PROBES

    def curvature(theta, v):
        return products(theta, v, tf.zeros([n_rows], dtype))

    def solve(theta, gradient, damping, start, precondition):
        """Preconditioned CG on (JᵀJ + λI) p = −g from ``start``; returns p, the iterations, the relative
        residual ‖b − Ap‖/‖b‖ where it stopped, and pᵀJᵀJp."""
        b = -gradient
        p = start
        res = b - (curvature(theta, p) + damping * p)
        z = precondition * res
        direction = z
        rz = tf.reduce_sum(res * z)
        norm_b = float(tf.reduce_sum(b * b))
        goal = CG_TOLERANCE**2 * norm_b
        i = 0
        while i < cg_steps and float(tf.reduce_sum(res * res)) > goal:
            a_dir = curvature(theta, direction) + damping * direction
            alpha = rz / tf.reduce_sum(direction * a_dir)
            p = p + alpha * direction
            res = res - alpha * a_dir
            z = precondition * res
            rz_new = tf.reduce_sum(res * z)
            direction = z + (rz_new / rz) * direction
            rz = rz_new
            i += 1
        relative = math.sqrt(float(tf.reduce_sum(res * res)) / norm_b) if norm_b > 0 else 0.0
        return p, i, relative, float(tf.reduce_sum(p * curvature(theta, p)))

    theta = _flat_weights(network, dtype)
    # Per iteration: the losses, λ after the iteration's update, the CG iterations and relative residual, the
    # gain ratio ρ (−1 where the model predicted no decrease) and whether the step was taken: enough to check
    # every rule of the method on its sequence.
    history: dict[str, list[float]] = {"lm_loss": [], "lm_val_loss": [], "lm_damping": [], "lm_cg": [],
                                       "lm_cg_residual": [], "lm_rho": [], "lm_accepted": []}
    initial_val = float(val_loss(theta))
    best_val, best_theta = initial_val, theta
    stale, nu = 0, 2.0
    diag = diagonal(theta)
    scale = float(tf.reduce_mean(diag))
    damping = 1e-2 * scale
    floor = 1e-12 * scale  # below this λ changes nothing in float64 (relative to the curvature's diagonal)
    last_step = tf.zeros_like(theta)
    bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "val_loss", "damping", "cg"], verbose=_progbar(verbose),
                              unit_name="iteration")
    for cb in callbacks:
        cb.on_train_begin()
    start = time.perf_counter()
    for iteration in range(steps):
        if iteration and iteration % DIAGONAL_EVERY == 0:
            diag = diagonal(theta)
        value, gradient = loss_and_gradient(theta)
        value = float(value)
        precondition = preconditioner(diag, damping)
        step, cg_iterations, cg_residual, curvature_along = solve(theta, gradient, tf.constant(damping, dtype), 0.5 * last_step,
                                                     precondition)
        # In the trainer's loss 2L: 2(m(0) − m(p)) = −2gᵀp − pᵀJᵀJp (the undamped model).
        predicted = -2 * float(tf.reduce_sum(step * gradient)) - curvature_along
        trial = float(train_loss(theta + step))
        rho = (value - trial) / predicted if predicted > 0 else -1.0
        accepted = math.isfinite(trial) and rho > 0
        if accepted:
            theta, last_step = theta + step, step
            damping = max(floor, damping * max(1 / 3, 1 - (2 * rho - 1) ** 3))
            nu = 2.0
            value = trial
        else:
            damping, nu, last_step = damping * nu, nu * 2, tf.zeros_like(theta)
        current = float(val_loss(theta)) if val is not None else value
        if current < best_val * (1 - IMPROVEMENT):
            best_val, best_theta, stale = current, theta, 0
        else:
            stale += 1
            if current < best_val:
                best_val, best_theta = current, theta
        logs = {"loss": value, "val_loss": current, "damping": damping, "cg": int(cg_iterations)}
        for key, item in logs.items():
            history[f"lm_{key}"].append(item)
        history["lm_cg_residual"].append(cg_residual)
        history["lm_rho"].append(rho)
        history["lm_accepted"].append(int(accepted))
        bar.update(iteration + 1, values=list(logs.items()))
        if callbacks:
            _assign(network, problem, theta)
            for cb in callbacks:
                cb.on_epoch_end(iteration, {**logs, "seconds": time.perf_counter() - start})
        if stale >= patience or damping > 1e10 * scale or not math.isfinite(value):  # no step is found
            break
    done = len(history["lm_loss"])
    if done < steps:  # stopped early: close the bar's line where it stopped
        bar.update(done, finalize=True)
    _assign(network, problem, best_theta)
    for cb in callbacks:
        cb.on_train_end()
    history["lm_iterations"] = [len(history["lm_loss"])]
    history["lm_initial_val_loss"] = [initial_val]
    history["lm_best_val_loss"] = [best_val]
    return history


def _assign(network, problem: _Problem, theta) -> None:
    for variable, part in zip(network.trainable_variables, problem.unflatten(theta)):
        variable.assign(tf.cast(part, variable.dtype))


def _progbar(verbose) -> int:
    if verbose == "auto":
        return 1
    return int(verbose)
