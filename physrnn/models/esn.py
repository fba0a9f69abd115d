"""The echo-state network: a fixed random reservoir (a Keras RNN cell) and a ridge readout fitted in closed form.

Trained and rolled out statefully from a zero reservoir: the reservoir is warmed on the true context, then the
loop closes on the network's own predictions. The reservoir pass and the loop run in NumPy, in the config's
precision, on the Keras layers' weights (see :class:`_Weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from ..data import Scaler
from .base import diverging
from .configs import EchoStateConfig
from .layers import standardize
from .linear import NetworkModel, ridge_readout

__all__ = ["EchoStateCell", "EchoStateNetwork", "ridge_cholesky"]


@keras.saving.register_keras_serializable(package="physrnn")
class EchoStateCell(keras.layers.Layer):
    """A leaky echo-state reservoir as a Keras RNN cell: ``h ← (1 − a) h + a tanh(W_in u + W h + b)``.

    The weights are drawn once from ``seed`` (input weights uniform in ±``input_scaling``, a sparse
    recurrent matrix of density ``connectivity`` rescaled to ``spectral_radius``, bias uniform in ±``bias``)
    and never trained; they are saved with the model.
    """

    def __init__(self, units, *, spectral_radius=0.9, leak_rate=1.0, input_scaling=0.5, connectivity=0.1,
                 bias=0.1, seed=0, **kwargs):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(**kwargs)
        self.units = int(units)
        self.spectral_radius, self.leak_rate = float(spectral_radius), float(leak_rate)
        self.input_scaling, self.connectivity, self.bias_scale = float(input_scaling), float(connectivity), float(bias)
        self.seed = int(seed)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        n_in = int(input_shape[-1])
        rng = np.random.default_rng(self.seed)
        w_in = rng.uniform(-1, 1, (n_in, self.units)) * self.input_scaling
        w = rng.standard_normal((self.units, self.units)) * (rng.random((self.units, self.units)) < self.connectivity)
        radius = np.max(np.abs(np.linalg.eigvals(w))) if self.units > 0 else 0.0
        if radius > 0:
            w *= self.spectral_radius / radius
        b = rng.uniform(-1, 1, self.units) * self.bias_scale
        for name, value in (("input_kernel", w_in), ("recurrent_kernel", w), ("bias", b)):
            setattr(self, name, self.add_weight(name=name, shape=value.shape, trainable=False,
                                                initializer=keras.initializers.Constant(value)))

    def call(self, inputs, states):
        # Keras passes the state as a list, or stacked into one (1, batch, units) tensor.
        h = states[0] if isinstance(states, (list, tuple)) or len(states.shape) == 3 else states
        pre = keras.ops.matmul(inputs, self.input_kernel) + keras.ops.matmul(h, self.recurrent_kernel) + self.bias
        h_new = (1 - self.leak_rate) * h + self.leak_rate * keras.ops.tanh(pre)
        return h_new, [h_new]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "spectral_radius": self.spectral_radius,
                "leak_rate": self.leak_rate, "input_scaling": self.input_scaling, "connectivity": self.connectivity,
                "bias": self.bias_scale, "seed": self.seed}


class EchoStateNetwork(NetworkModel):
    """Reservoir (Keras layer) + ridge readout; trained and rolled out statefully from a zero reservoir."""

    kind = "esn"
    config_class = EchoStateConfig

    def _build(self, n_in: int, n_obs: int, in_scaler: Scaler, out_scaler: Scaler) -> keras.Model:
        cfg, dtype = self.config, self.config.precision
        inp = keras.Input((None, n_in), dtype=dtype, name="inputs")
        u = standardize(in_scaler, "input_scaling", dtype)(inp)
        cell = EchoStateCell(cfg.units, spectral_radius=cfg.spectral_radius, leak_rate=cfg.leak_rate,
                             input_scaling=cfg.input_scaling, connectivity=cfg.connectivity, bias=cfg.bias,
                             seed=cfg.seed, dtype=dtype, name="reservoir_cell")
        h = keras.layers.RNN(cell, return_sequences=True, dtype=dtype, name="reservoir")(u)
        features = keras.layers.Concatenate(dtype=dtype, name="features")([h, u]) if cfg.input_to_readout else h
        z = keras.layers.Dense(n_obs, dtype=dtype, name="readout")(features)
        out = standardize(out_scaler, "increment", dtype, invert=True)(z)
        return keras.Model(inp, out, name="echo_state_network")

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """Readout features (reservoir state, and the scaled input if ``input_to_readout``) along sequences of
        ``inputs`` (n_seq, n_steps, n_in), from a zero reservoir."""
        weights = _Weights.of(self.network_, self.config.precision)
        u = weights.scale(inputs)
        states = weights.run(u, np.zeros((len(u), weights.units), weights.dtype))
        return np.concatenate([states, u], axis=-1) if self.config.input_to_readout else states

    def _fit(self, train, validation, **options):
        cfg = self.config
        if train.observed.shape[1] - 1 <= cfg.washout:
            raise ValueError(f"washout = {cfg.washout} leaves nothing to fit in trajectories of "
                             f"{train.observed.shape[1]} steps; use a shorter washout or longer trajectories")
        inputs = train.inputs[:, :-1]
        in_scaler, out_scaler = Scaler.fit(inputs), Scaler.fit(train.targets)
        self.network_ = self._build(inputs.shape[-1], train.n_obs, in_scaler, out_scaler)
        feats = self.features(inputs)[:, cfg.washout:]
        feats = feats.reshape(-1, feats.shape[-1]).astype(np.float64)
        targets = out_scaler.transform(train.targets[:, cfg.washout:]).reshape(-1, train.n_obs)
        kernel, bias = ridge_cholesky(feats, targets, cfg.ridge)
        self.network_.get_layer("readout").set_weights([kernel, bias])
        residual = feats @ kernel + bias - targets
        self.history_ = {"train_mse_scaled": [float(np.mean(residual**2))]}

    def _rollout(self, data, context, n_steps, bound):
        weights = _Weights.of(self.network_, self.config.precision)
        dtype, n_obs = weights.dtype, data.n_obs
        h = np.zeros((data.n_traj, weights.units), dtype)
        if context > 1:
            h = weights.run(weights.scale(data.inputs[:, : context - 1]), h)[:, -1]
        # The known inputs' part of every step, at once: their scaled values and their input-kernel term.
        known = (data.known[:, context - 1:n_steps - 1].astype(dtype) - weights.mean[n_obs:]) / weights.scale_[n_obs:]
        drive = known @ weights.input_kernel[n_obs:] + weights.bias
        out = np.full((data.n_traj, n_steps, n_obs), np.nan)
        out[:, :context] = data.observed[:, :context]
        obs = data.observed[:, context - 1].astype(dtype)
        alive = np.ones(data.n_traj, bool)
        diverged_at = np.full(data.n_traj, -1, np.int64)
        for j, i in enumerate(range(context - 1, n_steps - 1)):
            scaled = (obs - weights.mean[:n_obs]) / weights.scale_[:n_obs]
            h = weights.update(h, drive[:, j] + scaled @ weights.input_kernel[:n_obs] + h @ weights.recurrent_kernel)
            nxt = obs + self.dt_ * weights.increment(h, np.concatenate([scaled, known[:, j]], axis=-1))
            if not (np.isfinite(nxt).all() and np.abs(nxt).max() <= bound):  # rare: find which ones went
                bad = alive & diverging(np, nxt, bound)
                diverged_at[bad] = i + 1
                alive &= ~bad
                nxt[~alive] = 0.0  # keep the loop finite for the others
                h[~alive] = 0.0
                out[alive, i + 1] = nxt[alive]
            else:
                out[:, i + 1] = nxt
                out[~alive, i + 1] = np.nan
            obs = nxt
        return out, diverged_at

    def _step_jacobian(self, data, steps):
        """∂o_{n+1}/∂o_n with the reservoir at the state the true history up to n − 1 left it in (window 1): the
        map's response to its latest input; the reservoir's memory of earlier inputs is held fixed.

        In closed form (:meth:`_Weights.input_jacobian`) rather than by automatic differentiation: the same
        numbers to rounding (``tests`` compare the two), without a traced gradient per step."""
        weights = _Weights.of(self.network_, self.config.precision)
        u = data.inputs
        history = weights.run(weights.scale(u[:, : int(steps.max())]), np.zeros((len(u), weights.units), weights.dtype))
        out = []
        for n in steps:
            h = history[:, n - 1] if n > 0 else np.zeros((len(u), weights.units), weights.dtype)
            jac = weights.input_jacobian(h, u[:, n]).astype(np.float64)[..., : data.n_obs] * self.dt_
            out.append(jac + np.eye(data.n_obs))
        return np.stack(out, axis=1)[:, :, None]


@dataclass(frozen=True)
class _Weights:
    """The network's weights as NumPy arrays, and its update written with them.

    The reservoir pass and the closed loop run in NumPy on these: the recurrence is a few small matrix
    products per step, where a compiled TensorFlow loop costs more in per-step overhead (0.39 s for a
    2000-step rollout of one trajectory, warm) or in compilation (XLA: 0.6 s on first call, then 0.03 s) than
    NumPy's 0.09 s. The Keras layers stay the model (saved, loaded, differentiated); ``tests`` hold the two to
    agreement.
    """

    mean: np.ndarray
    scale_: np.ndarray
    input_kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    leak_rate: float
    readout_kernel: np.ndarray
    readout_bias: np.ndarray
    out_mean: np.ndarray
    out_scale: np.ndarray
    dtype: np.dtype

    @classmethod
    def of(cls, network: keras.Model, precision: str) -> _Weights:
        dtype = np.dtype(precision)
        cell = network.get_layer("reservoir").cell
        arrays = [np.asarray(v, dtype) for v in (
            network.get_layer("input_scaling").mean, network.get_layer("input_scaling").scale,
            cell.input_kernel, cell.recurrent_kernel, cell.bias)]
        kernel, bias = (np.asarray(a, dtype) for a in network.get_layer("readout").get_weights())
        unscale = network.get_layer("increment")
        return cls(*arrays, dtype.type(cell.leak_rate), kernel, bias, np.asarray(unscale.mean, dtype),
                   np.asarray(unscale.scale, dtype), dtype)

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    def scale(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, self.dtype) - self.mean) / self.scale_

    def update(self, h: np.ndarray, pre: np.ndarray) -> np.ndarray:
        """h ← (1 − a) h + a tanh(pre), with pre = W_in u + W h + b (a = 1: tanh(pre), the same numbers)."""
        if self.leak_rate == 1:
            return np.tanh(pre)
        return (1 - self.leak_rate) * h + self.leak_rate * np.tanh(pre)

    def run(self, u: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Reservoir states along sequences u (batch, n_steps, n_in), from h: (batch, n_steps, units)."""
        states = np.empty(u.shape[:2] + (self.units,), self.dtype)
        drive = u @ self.input_kernel + self.bias  # every step's input term in one product
        for i in range(u.shape[1]):
            h = self.update(h, drive[:, i] + h @ self.recurrent_kernel)
            states[:, i] = h
        return states

    def input_jacobian(self, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        """∂g/∂x of one step from reservoir state h (batch, units) with raw input x (batch, n_in), the state held:
        with z = (x − μ)/σ, pre = W_in z + W h + b and h' = (1 − a) h + a tanh(pre),
        ∂g/∂x = s_out ⊙ (R_h a diag(1 − tanh² pre) W_in + R_z) diag(1/σ), (batch, n_out, n_in)."""
        z = self.scale(x)
        pre = z @ self.input_kernel + h @ self.recurrent_kernel + self.bias
        dh_dz = self.leak_rate * (1 - np.tanh(pre) ** 2)[:, :, None] * self.input_kernel.T  # (batch, units, n_in)
        dg_dz = np.einsum("uo,bui->boi", self.readout_kernel[: self.units], dh_dz)
        if self.readout_kernel.shape[0] > self.units:  # the input also feeds the readout
            dg_dz = dg_dz + self.readout_kernel[self.units:].T
        return dg_dz * self.out_scale[:, None] / self.scale_

    def increment(self, h: np.ndarray, u: np.ndarray) -> np.ndarray:
        """g from the reservoir state and the scaled input, through the readout and the targets' scale."""
        feats = np.concatenate([h, u], axis=-1) if self.readout_kernel.shape[0] > self.units else h
        return (feats @ self.readout_kernel + self.readout_bias) * self.out_scale + self.out_mean


def ridge_cholesky(features: np.ndarray, targets: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """The ridge readout of :func:`~physrnn.models.linear.ridge_readout` (intercept unpenalised), solved from
    the normal equations ``(FᵀF + ridge I) W = FᵀT`` on centred features by a Cholesky factorisation.

    Several times faster than the QR solve for the tall feature matrices of a reservoir (one Gram product
    instead of a QR of the stacked matrix); the ridge keeps the system positive definite. ``ridge = 0``, or a
    Gram matrix that is not positive definite in floating point, falls back to ``ridge_readout``.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    if ridge <= 0:
        return ridge_readout(features, targets, ridge)
    mean_f, mean_t = features.mean(axis=0), targets.mean(axis=0)
    fc = features - mean_f
    gram = fc.T @ fc
    gram[np.diag_indices_from(gram)] += ridge
    try:
        factor = cho_factor(gram, lower=True, check_finite=False)
    except LinAlgError:
        return ridge_readout(features, targets, ridge)
    kernel = cho_solve(factor, fc.T @ (targets - mean_t), check_finite=False)
    return kernel, mean_t - mean_f @ kernel
