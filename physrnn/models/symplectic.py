"""A step map symplectic for any weights: a SympNet of gradient modules (Jin, Zhang, Zhu, Tang & Karniadakis,
*Neural Networks* 132, 2020), for Hamiltonian systems.

The state splits into positions q and their momenta p (the system's declaration,
:meth:`simulators.PhysicalSystem.canonical_coordinates`). The map is a composition of shears,

    kick   p ← p − c_V ∇_q V_k(q, u),        drift   q ← q + c_T ∇_p T_k(p, u),

kick, drift, kick, …, drift, kick (``layers`` drifts), with known inputs u (drive features, parameters) held
at their value at the step's start. A shear by the gradient of a scalar function is symplectic: its Jacobian
[[I, 0], [−c_V ∇²V, I]] has a symmetric block, so JᵀΩJ = Ω whatever the weights, and so is any composition.
Each potential is a one-hidden-layer network plus a quadratic and a linear part, with its gradient written
out in closed form (no automatic differentiation inside the map, so the trainers' forward- and reverse-mode
products go through it as through any layer):

    V(f, u) = Σ_j a_j log cosh(K_j·f + L_j·u + b_j) + ½ f_lᵀ S f_l + βᵀf + fᵀC u,
    ∇_f V = Kᵀ(a ⊙ tanh(K f + L u + b)) + S_sym f_l + β + C u,

where f are the potential's features of q: each position standardised by its training spread (f_l, those the
quadratic part sees), each angle as (cos θ, sin θ) so that the map is 2π-periodic in it; ∇_q V follows by the
chain rule. The quadratic, linear and coupling parts make an affine symplectic map representable exactly (the
harmonic oscillator's flow map is three shears; a known force F(t) enters H as −q F(t), the coupling C); the
network holds the rest. With every amplitude, S and β zero, the
map is the identity: that is where training starts.

With ``rotation`` (a system that declares its positions and momenta as planar vectors turned together, as
Kepler's are), each potential sees |q| or |p| alone: V(|q|) and T(|p|) are central, every shear turns with the
orbit, and the angular momentum q × p is conserved exactly (a central kick changes p along q, a drift q along p).

The network's output is the increment g = (Φ(o, u) − o)/Δt, so the kind trains and rolls out through the same
trainer and compiled loop as the recurrent kinds; a rollout's o + Δt g equals Φ(o, u) to rounding.
"""

from __future__ import annotations

import keras
import numpy as np

from ..data import Scaler
from .configs import SympNetConfig
from .recurrent import TrainedNetworkModel

__all__ = ["SympNet", "SymplecticMap"]


@keras.saving.register_keras_serializable(package="physrnn")
class SymplecticMap(keras.layers.Layer):
    """The symplectic step as a layer: a window (batch, 1, n_obs + n_known) of inputs → g (batch, n_obs).

    ``positions`` and ``momenta`` are observed columns, paired in order and covering every observed column;
    ``angles`` are the positions (as columns) seen as (cos, sin).
    """

    def __init__(self, n_obs: int, n_known: int, positions, momenta, angles, units: int, layers: int, dt: float,
                 rotation: bool = False, **kwargs):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(**kwargs)
        self.n_obs, self.n_known = int(n_obs), int(n_known)
        self.positions, self.momenta = tuple(int(c) for c in positions), tuple(int(c) for c in momenta)
        self.angles = tuple(int(c) for c in angles)
        self.units, self.layers, self.dt = int(units), int(layers), float(dt)
        self.rotation = bool(rotation)
        # Positions in the potential's order: the standardised ones (index into ``positions``), then the angles.
        index = lambda values: np.asarray(values, dtype=np.int32)  # noqa: E731 (an empty list stays integer)
        linear_at = [i for i, c in enumerate(self.positions) if c not in self.angles]
        angle_at = [i for i, c in enumerate(self.positions) if c in self.angles]
        self.linear_at, self.angle_at = index(linear_at), index(angle_at)
        self.unpermute = index(np.argsort(linear_at + angle_at))
        self.to_observed = index(np.argsort(self.positions + self.momenta))
        self.position_columns, self.momentum_columns = index(self.positions), index(self.momenta)
        n, n_lin = len(self.positions), len(linear_at)
        n_features = n_lin + 2 * len(angle_at)
        fixed = {"trainable": False, "initializer": "zeros"}
        self.q_mean = self.add_weight(name="q_mean", shape=(n,), **fixed)
        self.q_scale = self.add_weight(name="q_scale", shape=(n,), trainable=False, initializer="ones")
        self.p_mean = self.add_weight(name="p_mean", shape=(n,), **fixed)
        self.p_scale = self.add_weight(name="p_scale", shape=(n,), trainable=False, initializer="ones")
        self.u_mean = self.add_weight(name="u_mean", shape=(self.n_known,), **fixed)
        self.u_scale = self.add_weight(name="u_scale", shape=(self.n_known,), trainable=False, initializer="ones")
        self.kick_scale = self.add_weight(name="kick_scale", shape=(), trainable=False, initializer="ones")
        self.drift_scale = self.add_weight(name="drift_scale", shape=(), trainable=False, initializer="ones")
        if self.rotation:  # potentials of |q| and |p| alone: one feature each, standardised by these
            n_features = n_lin = n = 1
            self.radius = self.add_weight(name="radius_stats", shape=(2,), trainable=False, initializer="ones")
            self.speed = self.add_weight(name="speed_stats", shape=(2,), trainable=False, initializer="ones")
        self.kicks = [self._potential(f"kick{k}", n_features, n_lin) for k in range(self.layers + 1)]
        self.drifts = [self._potential(f"drift{k}", n, n) for k in range(self.layers)]

    def _potential(self, name: str, n_features: int, n_quadratic: int) -> dict:
        """One potential's weights: the network's kernel, input weights, bias and amplitudes; S and β."""
        normal = keras.initializers.RandomNormal(stddev=1.0)
        w = {"kernel": self.add_weight(name=f"{name}_kernel", shape=(n_features, self.units), initializer=normal),
             "bias": self.add_weight(name=f"{name}_bias", shape=(self.units,), initializer=normal),
             "amplitude": self.add_weight(name=f"{name}_amplitude", shape=(self.units,), initializer="zeros"),
             "quadratic": self.add_weight(name=f"{name}_quadratic", shape=(n_quadratic, n_quadratic),
                                          initializer="zeros"),
             "linear": self.add_weight(name=f"{name}_linear", shape=(n_features,), initializer="zeros")}
        if self.n_known:
            w["inputs"] = self.add_weight(name=f"{name}_inputs", shape=(self.n_known, self.units), initializer=normal)
            w["coupling"] = self.add_weight(name=f"{name}_coupling", shape=(n_features, self.n_known),
                                            initializer="zeros")
        return w

    def set_statistics(self, q: Scaler, p: Scaler, u: Scaler, kick_scale: float, drift_scale: float,
                       radius: Scaler | None = None, speed: Scaler | None = None) -> None:
        """The standardisations (with ``rotation``, also of |q| and |p|) and each kind of shear's scale c."""
        if self.rotation:
            self.radius.assign(np.concatenate([radius.mean, radius.scale]))
            self.speed.assign(np.concatenate([speed.mean, speed.scale]))
        self.q_mean.assign(q.mean)
        self.q_scale.assign(q.scale)
        self.p_mean.assign(p.mean)
        self.p_scale.assign(p.scale)
        self.u_mean.assign(u.mean)
        self.u_scale.assign(u.scale)
        self.kick_scale.assign(kick_scale)
        self.drift_scale.assign(drift_scale)

    @staticmethod
    def _gradient(w: dict, features, n_quadratic: int, inputs):
        """∇_f of one potential at ``features`` (batch, n_f), with the known inputs standardised (or None)."""
        ops = keras.ops
        z = ops.matmul(features, w["kernel"]) + w["bias"]
        grad = w["linear"]
        if inputs is not None:
            z = z + ops.matmul(inputs, w["inputs"])
            grad = grad + ops.matmul(inputs, ops.transpose(w["coupling"]))
        grad = grad + ops.matmul(w["amplitude"] * ops.tanh(z), ops.transpose(w["kernel"]))
        s = w["quadratic"]
        curvature = ops.matmul(features[:, :n_quadratic], 0.5 * (s + ops.transpose(s)))
        pad = ops.zeros_like(features[:, n_quadratic:])
        return grad + ops.concatenate([curvature, pad], axis=-1)

    @staticmethod
    def _radial(w, vector, stats, inputs):
        """∇ of a potential of |v| alone, V'(|v|) v/|v| (0 at v = 0, where a smooth V of |v| is flat)."""
        ops = keras.ops
        norm = ops.sqrt(ops.sum(vector * vector, axis=-1, keepdims=True))
        grad_f = SymplecticMap._gradient(w, (norm - stats[0]) / stats[1], 1, inputs)
        safe = ops.where(norm > 0, norm, ops.ones_like(norm))
        return ops.where(norm > 0, grad_f / stats[1] / safe, ops.zeros_like(norm)) * vector

    def _kick(self, w, q, p, inputs):
        ops = keras.ops
        if self.rotation:
            return p - self.kick_scale * self._radial(w, q, self.radius, inputs)
        lin = ops.take(q, self.linear_at, axis=-1)
        theta = ops.take(q, self.angle_at, axis=-1)
        scaled = (lin - ops.take(self.q_mean, self.linear_at)) / ops.take(self.q_scale, self.linear_at)
        features = ops.concatenate([scaled, ops.cos(theta), ops.sin(theta)], axis=-1)
        n_lin, n_ang = len(self.linear_at), len(self.angle_at)
        grad_f = self._gradient(w, features, n_lin, inputs)
        grad_lin = grad_f[:, :n_lin] / ops.take(self.q_scale, self.linear_at)
        grad_ang = -ops.sin(theta) * grad_f[:, n_lin:n_lin + n_ang] + ops.cos(theta) * grad_f[:, n_lin + n_ang:]
        grad_q = ops.take(ops.concatenate([grad_lin, grad_ang], axis=-1), self.unpermute, axis=-1)
        return p - self.kick_scale * grad_q

    def _drift(self, w, q, p, inputs):
        if self.rotation:
            return q + self.drift_scale * self._radial(w, p, self.speed, inputs)
        features = (p - self.p_mean) / self.p_scale
        grad_f = self._gradient(w, features, len(self.positions), inputs)
        return q + self.drift_scale * grad_f / self.p_scale

    def flow(self, observed, known):
        """Φ(o, u): the next observed state, (batch, n_obs)."""
        ops = keras.ops
        q = ops.take(observed, self.position_columns, axis=-1)
        p = ops.take(observed, self.momentum_columns, axis=-1)
        inputs = (known - self.u_mean) / self.u_scale if self.n_known else None
        for k in range(self.layers):
            p = self._kick(self.kicks[k], q, p, inputs)
            q = self._drift(self.drifts[k], q, p, inputs)
        p = self._kick(self.kicks[-1], q, p, inputs)
        return ops.take(ops.concatenate([q, p], axis=-1), self.to_observed, axis=-1)

    def call(self, window):
        observed = window[:, -1, : self.n_obs]
        return (self.flow(observed, window[:, -1, self.n_obs:]) - observed) / self.dt

    def get_config(self):
        return {**super().get_config(), "n_obs": self.n_obs, "n_known": self.n_known,
                "positions": list(self.positions), "momenta": list(self.momenta), "angles": list(self.angles),
                "units": self.units, "layers": self.layers, "dt": self.dt, "rotation": self.rotation}


def _rms(values: np.ndarray) -> float:
    """The root mean square of positive spreads (1 where there are none)."""
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else 1.0


class SympNet(TrainedNetworkModel):
    """A symplectic step map (see the module): ``SympNet(units=32, layers=2, ...)`` (settings:
    :class:`~physrnn.models.configs.SympNetConfig`)."""

    kind = "sympnet"
    config_class = SympNetConfig

    def _network_for(self, train, n_in: int) -> keras.Model:
        cfg, dtype = self.config, self.config.precision
        positions, momenta = cfg.split(train.system, train.state_names)
        angles = tuple(train.state_names.index(a) for a in cfg.angles)
        q, p = train.observed[..., list(positions)], train.observed[..., list(momenta)]
        q_scaler, p_scaler = Scaler.fit(q), Scaler.fit(p)
        is_angle = np.isin(positions, angles)
        # An angle enters as (cos, sin): no centring or scaling.
        q_scaler = Scaler(np.where(is_angle, 0.0, q_scaler.mean), np.where(is_angle, 1.0, q_scaler.scale))
        rates = Scaler.fit(train.targets).scale
        # Each kick's share of the step's change in p, each drift's of the change in q, for O(1) potentials.
        kick_scale = train.dt * _rms(rates[list(momenta)]) * _rms(q_scaler.scale) / (cfg.layers + 1)
        drift_scale = train.dt * _rms(rates[list(positions)]) * _rms(p_scaler.scale) / cfg.layers
        step = SymplecticMap(train.n_obs, train.n_known, positions, momenta, angles, cfg.units, cfg.layers,
                             train.dt, cfg.rotation, dtype=dtype, name="symplectic_map")
        radius, speed = (Scaler.fit(np.linalg.norm(v, axis=-1)[..., None]) for v in (q, p))
        if cfg.rotation:  # a central potential's gradient is V'(r): its scale is r's
            kick_scale *= radius.scale[0] / _rms(q_scaler.scale)
            drift_scale *= speed.scale[0] / _rms(p_scaler.scale)
        step.set_statistics(q_scaler, p_scaler, Scaler.fit(train.known) if train.n_known else Scaler(
            np.zeros(0), np.ones(0)), kick_scale, drift_scale, radius, speed)
        inp = keras.Input((1, n_in), dtype=dtype, name="window")
        return keras.Model(inp, step(inp), name="sympnet_step_model")
