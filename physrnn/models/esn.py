"""The echo-state network: a fixed random reservoir (a Keras RNN cell) and a ridge readout fitted in closed form.

Trained and rolled out statefully from a zero reservoir: the reservoir is warmed on the true context, then the
loop closes on the network's own predictions.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from ..data import Scaler
from .base import diverging
from .configs import EchoStateConfig
from .layers import standardize
from .linear import NetworkModel, ridge_readout
from .rollout import absolute_step

__all__ = ["EchoStateCell", "EchoStateNetwork"]


@keras.saving.register_keras_serializable(package="physrnn")
class EchoStateCell(keras.layers.Layer):
    """A leaky echo-state reservoir as a Keras RNN cell: ``h ← (1 − a) h + a tanh(W_in u + W h + b)``.

    The weights are drawn once from ``seed`` (input weights uniform in ±``input_scaling``, a sparse
    recurrent matrix of density ``connectivity`` rescaled to ``spectral_radius``, bias uniform in ±``bias``)
    and never trained; they are saved with the model.
    """

    def __init__(self, units, *, spectral_radius=0.9, leak_rate=1.0, input_scaling=0.5, connectivity=0.1,
                 bias=0.1, seed=0, **kwargs):
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

    @property
    def min_context(self) -> int:
        return self.config.washout + 1

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
        """Readout features (reservoir state, and the scaled input if ``input_to_readout``) along sequences."""
        feats = keras.Model(self.network_.input, self.network_.get_layer("readout").input)
        return np.asarray(feats.predict(inputs.astype(self.config.precision), verbose=0, batch_size=len(inputs)))

    def _fit(self, train, validation, **options):
        cfg = self.config
        if train.observed.shape[1] - 1 <= cfg.washout:
            raise ValueError(f"washout = {cfg.washout} leaves nothing to fit in trajectories of "
                             f"{train.observed.shape[1]} steps; use a shorter washout or longer trajectories")
        inputs = train.inputs[:, :-1]
        in_scaler, out_scaler = Scaler.fit(inputs), Scaler.fit(train.targets)
        self.network_ = self._build(inputs.shape[-1], train.n_obs, in_scaler, out_scaler)
        feats = self.features(inputs)[:, cfg.washout:].reshape(-1, self.network_.get_layer("readout").input.shape[-1])
        targets = out_scaler.transform(train.targets[:, cfg.washout:]).reshape(-1, train.n_obs)
        kernel, bias = ridge_readout(feats.astype(np.float64), targets, cfg.ridge)
        self.network_.get_layer("readout").set_weights([kernel, bias])
        residual = feats @ kernel + bias - targets
        self.history_ = {"train_mse_scaled": [float(np.mean(residual**2))]}

    def _rollout(self, data, context, n_steps, bound):
        net, dtype = self.network_, self.config.precision
        u = data.inputs
        warm = tf.constant(u[:, : context - 1], dtype=dtype)
        obs = tf.constant(data.observed[:, context - 1], dtype=dtype)
        last_known = tf.constant(data.known[:, context - 1:n_steps], dtype=dtype)
        predicted, diverged_at = _esn_loop(net.get_layer("input_scaling"), net.get_layer("reservoir").cell,
                                           net.get_layer("readout"), net.get_layer("increment"),
                                           self.config.input_to_readout, warm, obs, last_known,
                                           tf.constant(self.dt_, dtype), tf.constant(bound, dtype))
        out = np.full((data.n_traj, n_steps, data.n_obs), np.nan)
        out[:, :context] = data.observed[:, :context]
        out[:, context:] = predicted.numpy()
        return out, absolute_step(diverged_at.numpy(), context)


    def _step_jacobian(self, data, steps):
        """∂o_{n+1}/∂o_n with the reservoir at the state the true history up to n − 1 left it in (window 1): the
        map's response to its latest input; the reservoir's memory of earlier inputs is held fixed."""
        net, dtype = self.network_, self.config.precision
        scale, cell = net.get_layer("input_scaling"), net.get_layer("reservoir").cell
        readout, unscale = net.get_layer("readout"), net.get_layer("increment")
        u = data.inputs
        states = keras.Model(net.input, net.get_layer("reservoir").output)
        history = np.asarray(states.predict(u[:, : int(steps.max())].astype(dtype), verbose=0, batch_size=len(u)))
        out = []
        for n in steps:
            h = tf.constant(history[:, n - 1] if n > 0 else np.zeros((len(u), cell.units)), dtype)
            x = tf.constant(u[:, n], dtype)
            with tf.GradientTape() as tape:
                tape.watch(x)
                z = scale(x)
                h_next, _ = cell(z, [h])
                g = unscale(readout(tf.concat([h_next, z], axis=-1) if self.config.input_to_readout else h_next))
            jac = tape.batch_jacobian(g, x).numpy().astype(np.float64)[..., : data.n_obs] * self.dt_
            out.append(jac + np.eye(data.n_obs))
        return np.stack(out, axis=1)[:, :, None]


@tf.function(reduce_retracing=True)
def _esn_loop(scale, cell, readout, unscale, input_to_readout, warm, obs, known, dt, bound):
    """Warm the reservoir on the true context, then close the loop; ``known`` starts at the last context step."""
    batch = tf.shape(obs)[0]
    h = tf.zeros([batch, cell.units], obs.dtype)
    for i in tf.range(tf.shape(warm)[1]):
        h, _ = cell(scale(warm[:, i]), [h])
    n_new = tf.shape(known)[1] - 1
    outputs = tf.TensorArray(obs.dtype, size=n_new)
    diverged_at = tf.fill([batch], tf.constant(-1, tf.int64))
    alive = tf.ones([batch], tf.bool)
    nan = tf.constant(np.nan, obs.dtype)
    for i in tf.range(n_new):
        u = scale(tf.concat([obs, known[:, i]], axis=-1))
        h, _ = cell(u, [h])
        feats = tf.concat([h, u], axis=-1) if input_to_readout else h
        nxt = obs + dt * unscale(readout(feats))
        bad = alive & diverging(tnp, nxt, bound)
        diverged_at = tf.where(bad, tf.cast(i, tf.int64), diverged_at)
        alive = alive & ~bad
        nxt = tf.where(alive[:, None], nxt, tf.zeros_like(nxt))
        h = tf.where(alive[:, None], h, tf.zeros_like(h))
        outputs = outputs.write(i, tf.where(alive[:, None], nxt, nan))
        obs = nxt
    return tf.transpose(outputs.stack(), [1, 0, 2]), diverged_at
