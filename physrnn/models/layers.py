"""Keras layers shared by the network models: standardisation held as weights, and the next-value head."""

from __future__ import annotations

import keras
import numpy as np

from ..data import Scaler, angle_features

__all__ = ["AngleFeatures", "IncrementFromValue", "PlaneFrame", "Standardize", "angle_features", "plane_frame",
           "standardize"]


@keras.saving.register_keras_serializable(package="physrnn")
class Standardize(keras.layers.Layer):
    """``(z − mean) / scale``, or its inverse, with mean and scale held as (non-trainable) weights.

    Keras' own Normalization layer keeps fitted statistics in its config, which loses float64 precision on
    saving; weights are saved bit for bit, so a reloaded model rolls out identically.
    """

    def __init__(self, size: int, *, invert: bool = False, **kwargs):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(**kwargs)
        self.size, self.invert = int(size), bool(invert)
        self.mean = self.add_weight(name="mean", shape=(self.size,), initializer="zeros", trainable=False)
        self.scale = self.add_weight(name="scale", shape=(self.size,), initializer="ones", trainable=False)

    def set_statistics(self, scaler: Scaler) -> None:
        self.mean.assign(scaler.mean)
        self.scale.assign(scaler.scale)

    def call(self, z):
        return z * self.scale + self.mean if self.invert else (z - self.mean) / self.scale

    def get_config(self):
        return {**super().get_config(), "size": self.size, "invert": self.invert}


@keras.saving.register_keras_serializable(package="physrnn")
class IncrementFromValue(keras.layers.Layer):
    """``g = (value − o_i)/Δt``: a network that predicts the next value, seen through the Euler-style update.

    Called on ``[value, window]``; ``o_i`` is the first ``n_obs`` columns of the window's last input.
    """

    def __init__(self, n_obs: int, dt: float, **kwargs):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(**kwargs)
        self.n_obs, self.dt = int(n_obs), float(dt)

    def call(self, inputs):
        value, window = inputs
        return (value - window[:, -1, : self.n_obs]) / self.dt

    def get_config(self):
        return {**super().get_config(), "n_obs": self.n_obs, "dt": self.dt}


def standardize(scaler: Scaler, name: str, dtype: str, invert: bool = False) -> Standardize:
    layer = Standardize(len(scaler.mean), invert=invert, dtype=dtype, name=name)
    layer.set_statistics(scaler)
    return layer


@keras.saving.register_keras_serializable(package="physrnn")
class AngleFeatures(keras.layers.Layer):
    """Each angle column of the inputs replaced by (cos, sin), appended at the end (see :func:`angle_features`):
    a network after it is 2π-periodic in those inputs."""

    def __init__(self, n_in: int, columns, **kwargs):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(**kwargs)
        self.n_in, self.columns = int(n_in), tuple(int(c) for c in columns)
        self.keep = [i for i in range(self.n_in) if i not in self.columns]

    def call(self, x):
        ops = keras.ops
        angles = ops.take(x, list(self.columns), axis=-1)
        return ops.concatenate([ops.take(x, self.keep, axis=-1), ops.cos(angles), ops.sin(angles)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_in": self.n_in, "columns": list(self.columns)}


def plane_frame(x, pairs, *, xp=np, angle_from=None, invert: bool = False):
    """``x`` (..., n) with each planar vector (the column ``pairs``) turned by −φ, φ the polar angle of the first
    pair in ``angle_from`` (..., n) (default: ``x`` itself): the first vector then lies on the positive x axis,
    and every other turns with it. ``invert`` turns by +φ. ``xp``: NumPy, or ``keras.ops`` inside a network."""
    ref = x if angle_from is None else angle_from
    a, b = pairs[0]
    phi = xp.arctan2(ref[..., b], ref[..., a])
    c, s = xp.cos(phi), xp.sin(phi)
    if invert:
        s = -s
    columns = [x[..., i] for i in range(x.shape[-1])]
    for i, j in pairs:
        columns[i], columns[j] = c * x[..., i] + s * x[..., j], -s * x[..., i] + c * x[..., j]
    return xp.stack(columns, axis=-1)


@keras.saving.register_keras_serializable(package="physrnn")
class PlaneFrame(keras.layers.Layer):
    """The co-rotating frame of a system's rotational symmetry (:func:`plane_frame`). Called on a window
    (batch, w, n_in), it turns every step by the angle of the window's latest position; called on
    ``[g, window]`` with ``invert``, it turns the increment g (batch, n_obs) back by the same angle. A network
    between the two is exactly rotation-equivariant."""

    def __init__(self, pairs, *, invert: bool = False, **kwargs):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(**kwargs)
        self.pairs, self.invert = tuple(tuple(int(c) for c in p) for p in pairs), bool(invert)

    def call(self, inputs):
        if self.invert:
            g, window = inputs
            return plane_frame(g, self.pairs, xp=keras.ops, angle_from=window[:, -1], invert=True)
        return plane_frame(inputs, self.pairs, xp=keras.ops, angle_from=inputs[:, -1:])

    def get_config(self):
        return {**super().get_config(), "pairs": [list(p) for p in self.pairs], "invert": self.invert}
