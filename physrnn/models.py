r"""Models of the Euler-style update, all behind one interface: ``fit``, closed-loop ``rollout``, ``save``, ``load``.

=================  ==========================================================================================
``simplernn``,     Keras recurrent step models: a window of the last ``window`` inputs, from a zero state, gives
``gru``, ``lstm``  the increment g; trained one-step (teacher forcing) or through their own rollout.
``esn``            Echo-state network: fixed random reservoir (a Keras layer), linear readout fitted in closed
                   form by ridge regression after a washout; stateful in training and rollout alike.
``linear``         Least-squares affine map from the same window of inputs to g (exact for the linear oscillator).
``persistence``    g = 0.
``euler``, ``rk4`` One explicit Euler or classical RK4 step of the *true* right-hand side at the same Δt.
=================  ==========================================================================================

Every rollout is closed-loop: after ``context`` true observed states, a model consumes only its own
predictions and the known inputs (drive features, parameters). Keras models roll out in a compiled graph
loop over the whole batch. A trajectory whose state becomes non-finite or exceeds the model's bound is
flagged (``Rollout.diverged``) and continues as NaN; nothing raises.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, before it is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from simulators.integrate import _rk4_step  # noqa: E402
from simulators.trajectory_file import check_output_path, software_versions  # noqa: E402

from .data import FeatureSpec, Scaler, StepData  # noqa: E402

__all__ = ["MODEL_TYPES", "EchoStateCell", "EchoStateConfig", "LinearConfig", "RecurrentConfig", "Rollout",
           "StepModel", "build_model", "load_model"]

from . import MODEL_TYPES  # noqa: E402
PRECISIONS = ("float32", "float64")
_FORMAT = "physrnn.model"
_FORMAT_VERSION = 1
_META = "physrnn.json"


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Rollout:
    """A closed-loop rollout of a batch of trajectories.

    Attributes
    ----------
    time : ndarray of shape (n_steps,)
    observed : ndarray of shape (n_traj, n_steps, n_obs)
        Predicted observed states; the first ``context`` are the true ones; NaN after a divergence.
    context : int
        Number of true states the rollout started from.
    diverged : ndarray of shape (n_traj,), bool
    diverged_at : ndarray of shape (n_traj,), int
        First step index at which a trajectory diverged (−1 if it did not).
    bound : float
        The state magnitude beyond which a trajectory counts as diverged.
    seconds : float
        Wall time of the rollout.
    """

    time: np.ndarray
    observed: np.ndarray
    context: int
    diverged: np.ndarray
    diverged_at: np.ndarray
    bound: float
    seconds: float


# ----------------------------------------------------------------------------------------------- configs
def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {rel}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class RecurrentConfig:
    """A Keras recurrent step model and how to train it.

    Parameters
    ----------
    cell : {"simplernn", "gru", "lstm"}
    units : int
        Hidden units per layer.
    layers : int
        Stacked recurrent layers.
    window : int
        Inputs the model sees per prediction (from a zero state), in training and rollout alike.
    epochs, batch_size : int
    learning_rate : float
        Initial Adam learning rate.
    schedule : {"cosine", "plateau"}
        "cosine": decay to 1e-3 of the initial rate over ``epochs``; "plateau": halve it whenever the
        validation loss stalls for ``patience // 2`` epochs.
    clipnorm : float
        Gradient-norm clipping (0: none).
    patience : int
        Early stopping on the validation loss, restoring the best weights.
    rollout_steps : int
        1: one-step teacher forcing; K > 1: the loss is averaged over K steps of the model's own rollout.
    refine_steps : int
        After Adam, this many iterations of full-batch L-BFGS (SciPy) on the same loss, kept only if the
        validation loss improves. Adam's gradient noise leaves a floor on the loss that a quasi-Newton
        polish removes cheaply on these small networks (0: none).
    target : {"increment", "value"}
        What the network's output layer predicts. "increment" (physrnn's form): g, the standardised
        Euler-style increment. "value": the next observed value itself, standardised like the states — the
        common textbook recipe, kept to reproduce it (``studies/course.toml``). Both are trained and rolled out
        through the same update, ``g = (value − o_i)/Δt`` for the latter, so the loss differs only by a constant
        factor; what differs is what the network has to represent.
    precision : {"float32", "float64"}
    seed : int
    """

    cell: str = "gru"
    units: int = 32
    layers: int = 1
    window: int = 8
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 3e-3
    schedule: str = "cosine"
    clipnorm: float = 1.0
    patience: int = 20
    rollout_steps: int = 1
    refine_steps: int = 0
    target: str = "increment"
    precision: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cell not in ("simplernn", "gru", "lstm"):
            raise ValueError(f"unknown recurrent cell {self.cell!r}; choose simplernn, gru or lstm")
        if self.target not in ("increment", "value"):
            raise ValueError(f"unknown target {self.target!r}; choose increment or value")
        for name in ("units", "layers", "window", "epochs", "batch_size", "patience", "rollout_steps"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0)
        _check_int("refine_steps", self.refine_steps, 0)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("clipnorm", self.clipnorm, allow_zero=True)
        if self.schedule not in ("cosine", "plateau"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine or plateau")
        _check_precision(self.precision)


@dataclass(frozen=True, kw_only=True)
class EchoStateConfig:
    """An echo-state network.

    Parameters
    ----------
    units : int
        Reservoir size.
    spectral_radius : float
        Largest |eigenvalue| of the recurrent weight matrix (< 1 for the echo-state property, as a rule).
    leak_rate : float
        a in (0, 1]: h ← (1 − a) h + a tanh(W_in u + W h + b).
    input_scaling : float
        Scale of the uniform [−1, 1] input weights (inputs are standardised first).
    connectivity : float
        Fraction of non-zero recurrent weights, in (0, 1].
    bias : float
        Scale of the uniform [−1, 1] reservoir bias.
    ridge : float
        Tikhonov regularisation of the readout (on standardised features).
    washout : int
        Leading steps of each sequence left out of the readout fit; rollouts start after at least as many
        true states.
    input_to_readout : bool
        The readout sees the (standardised) input beside the reservoir state.
    precision : {"float32", "float64"}
    seed : int
    """

    units: int = 200
    spectral_radius: float = 0.9
    leak_rate: float = 1.0
    input_scaling: float = 0.5
    connectivity: float = 0.1
    bias: float = 0.1
    ridge: float = 1e-8
    washout: int = 50
    input_to_readout: bool = True
    precision: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("units", self.units, 1)
        _check_int("washout", self.washout, 0)
        _check_int("seed", self.seed, 0)
        _check_positive("spectral_radius", self.spectral_radius)
        _check_positive("input_scaling", self.input_scaling)
        _check_positive("bias", self.bias, allow_zero=True)
        _check_positive("ridge", self.ridge, allow_zero=True)
        if not (isinstance(self.leak_rate, (int, float)) and 0 < self.leak_rate <= 1):
            raise ValueError(f"leak_rate must be in (0, 1], got {self.leak_rate!r}")
        if not (isinstance(self.connectivity, (int, float)) and 0 < self.connectivity <= 1):
            raise ValueError(f"connectivity must be in (0, 1], got {self.connectivity!r}")
        if not isinstance(self.input_to_readout, bool):
            raise TypeError(f"input_to_readout must be true or false, got {self.input_to_readout!r}")
        _check_precision(self.precision)


@dataclass(frozen=True, kw_only=True)
class LinearConfig:
    """The least-squares affine flow map on a window of inputs (``window = 1``: the current input only)."""

    window: int = 1
    ridge: float = 0.0

    def __post_init__(self) -> None:
        _check_int("window", self.window, 1)
        _check_positive("ridge", self.ridge, allow_zero=True)


@dataclass(frozen=True, kw_only=True)
class NoConfig:
    """Physics baselines have nothing to set."""


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose float32 or float64")


# ----------------------------------------------------------------------------------------------- base
class StepModel(ABC):
    """A model of the Euler-style update ``o_{i+1} = o_i + Δt · g(u_{≤i})``.

    Subclasses set ``kind`` and ``config_class``; fitted state ends in ``_`` (``spec_``, ``dt_``,
    ``bound_``, ``network_``, ``history_``). ``fit`` returns the model.
    """

    kind: ClassVar[str]
    config_class: ClassVar[type] = NoConfig
    #: Whether fitting learns anything from the data (so a study trains it once per seed).
    learns: ClassVar[bool] = True

    def __init__(self, config=None) -> None:
        self.config = self.config_class() if config is None else config
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"a {self.kind} model takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.spec_: FeatureSpec | None = None
        self.dt_: float | None = None
        self.bound_: float | None = None
        self.history_: dict[str, list[float]] = {}
        self.fit_seconds_: float = 0.0
        self.provenance_: dict[str, Any] = {}  # where the training data came from (set by the caller)

    # -- what a subclass provides
    @property
    def min_context(self) -> int:
        """The fewest true states a rollout needs before it runs closed-loop."""
        return 1

    def _fit(self, train: StepData, validation: StepData | None, **kwargs) -> None:
        """Fit on the data (the base class has already recorded spec_, dt_, bound_)."""

    @abstractmethod
    def _rollout(self, data: StepData, context: int, n_steps: int, bound: float):
        """Return (observed (n, n_steps, n_obs) with NaN after divergence, diverged_at (n,))."""

    # -- the interface
    def fit(self, train: StepData, validation: StepData | None = None, **kwargs) -> StepModel:
        """Fit on ``train`` (early stopping and scaling use ``validation`` and ``train`` only); returns self.

        ``kwargs`` are training options (``verbose``, ``checkpoint_dir``, ``callbacks``) for models trained by
        gradient descent; every other model accepts and ignores them, so callers need not tell them apart.
        """
        if validation is not None and validation.spec != train.spec:
            raise ValueError("train and validation data were built with different feature specs")
        self.spec_, self.dt_ = train.spec, float(train.dt)
        # Divergence: beyond 100x the largest observed magnitude in training (or 1 for all-zero data).
        self.bound_ = 100.0 * max(1.0, float(np.abs(train.observed).max()))
        start = time.perf_counter()
        self._fit(train, validation, **kwargs)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def rollout(self, data: StepData, *, context: int | None = None, n_steps: int | None = None,
                bound: float | None = None) -> Rollout:
        """Closed-loop rollout of every trajectory in ``data`` from its first ``context`` true states.

        Parameters
        ----------
        data : StepData
            True observed states (only the first ``context`` are used) and known inputs for every step.
        context : int, optional
            True states given (default: the model's minimum).
        n_steps : int, optional
            Length of the rollout including the context (default: all of ``data``).
        bound : float, optional
            Divergence bound on |state| (default: 100x the largest magnitude seen in training).
        """
        self._check_fitted()
        if data.spec != self.spec_:
            raise ValueError(f"the data's features {data.spec.to_config()} differ from the model's "
                             f"{self.spec_.to_config()}; build the data with the model's spec")
        if not np.isclose(data.dt, self.dt_, rtol=1e-9):
            raise ValueError(f"the data's dt = {data.dt:g} differs from the model's dt = {self.dt_:g}; the learned "
                             "update is tied to its time step")
        total = data.observed.shape[1]
        n_steps = total if n_steps is None else n_steps
        context = self.min_context if context is None else context
        if not self.min_context <= context < n_steps <= total:
            raise ValueError(f"need {self.min_context} <= context ({context}) < n_steps ({n_steps}) <= the data's "
                             f"{total} steps")
        bound = self.bound_ if bound is None else float(bound)
        start = time.perf_counter()
        observed, diverged_at = self._rollout(data, context, n_steps, bound)
        seconds = time.perf_counter() - start
        diverged_at = np.asarray(diverged_at, dtype=np.int64)
        return Rollout(time=data.time[:n_steps], observed=observed, context=context, diverged=diverged_at >= 0,
                       diverged_at=diverged_at, bound=bound, seconds=seconds)

    def _check_fitted(self) -> None:
        if self.spec_ is None:
            raise RuntimeError(f"this {self.kind} model is not fitted; call fit() first or load a saved model")

    # -- persistence
    def _metadata(self) -> dict[str, Any]:
        return {"format": _FORMAT, "format_version": _FORMAT_VERSION, "kind": self.kind,
                "config": asdict(self.config), "spec": self.spec_.to_config(), "dt": self.dt_,
                "bound": self.bound_, "history": self.history_, "fit_seconds": self.fit_seconds_,
                "provenance": self.provenance_, "software": software_versions()}

    def _network(self) -> keras.Model | None:
        return None

    def _restore(self, network: keras.Model | None) -> None:
        """Rebuild fitted state from a loaded network."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write a ``.keras`` file (the Keras network, if any, plus ``physrnn.json``), atomically."""
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"model files end in .keras, got '{path}'")
        check_output_path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.keras")
        try:
            network = self._network()
            if network is not None:
                network.save(tmp)
                mode = "a"
            else:
                mode = "w"
            with zipfile.ZipFile(tmp, mode) as z:
                z.writestr(_META, json.dumps(self._metadata(), indent=2))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path


def load_model(path: str | os.PathLike) -> StepModel:
    """Load a model written by :meth:`StepModel.save`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such model file: '{path}'")
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read(_META))
            has_network = "config.json" in z.namelist()
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise ValueError(f"'{path}' is not a physrnn model file (a .keras archive with {_META})") from None
    if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"'{path}' has model format {meta.get('format')} v{meta.get('format_version')}; this "
                         f"physrnn reads {_FORMAT} v{_FORMAT_VERSION}")
    if meta.get("kind") not in _CLASSES:
        raise ValueError(f"'{path}' holds a model of unknown type {meta.get('kind')!r}; this physrnn knows "
                         f"{', '.join(MODEL_TYPES)}")
    cls = _CLASSES[meta["kind"]]
    model = cls(cls.config_class(**meta["config"]))
    spec = meta["spec"]
    model.spec_ = FeatureSpec(**{**spec, "parameters": tuple(spec["parameters"])})
    model.dt_, model.bound_ = meta["dt"], meta["bound"]
    model.history_, model.fit_seconds_ = meta["history"], meta["fit_seconds"]
    model.provenance_ = meta.get("provenance", {})
    network = keras.saving.load_model(path, compile=False) if has_network else None
    model._restore(network)
    return model


# ----------------------------------------------------------------------------------------------- physics baselines
class _PhysicsModel(StepModel):
    """Steps the true system from the true state at the end of the context.

    The baselines know the equations, so they are handed the whole true state there even under partial
    observation (a position-only study compares its models with the physics observed the same way).
    """

    learns = False

    def _fit(self, train, validation, **kwargs):
        pass  # nothing to learn

    @abstractmethod
    def _step(self, system, t: float, state: np.ndarray, dt: float) -> np.ndarray: ...

    def _rollout(self, data, context, n_steps, bound):
        n = data.n_traj
        out = np.full((n, n_steps, data.n_obs), np.nan)
        out[:, :context] = data.observed[:, :context]
        state = data.states[:, context - 1].copy()
        alive = np.ones(n, dtype=bool)
        diverged_at = np.full(n, -1)
        with np.errstate(all="ignore"):
            for i in range(context, n_steps):
                state = self._step(data.system, data.time[i - 1], state, data.dt)
                bad = alive & (~np.isfinite(state).all(axis=1) | (np.abs(state) > bound).any(axis=1))
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
        return _rk4_step(system.rhs, t, state, dt)


# ----------------------------------------------------------------------------------------------- graph rollout
def _windowed_rollout(network: keras.Model, data: StepData, window: int, context: int, n_steps: int,
                      dt: float, bound: float, dtype: str):
    """Closed loop for a model that maps a window of inputs to g: one compiled loop over the whole batch."""
    u = data.inputs
    first = tf.constant(u[:, context - window:context], dtype=dtype)
    obs = tf.constant(data.observed[:, context - 1], dtype=dtype)
    known = tf.constant(data.known[:, context:n_steps], dtype=dtype)
    predicted, diverged_at = _window_loop(network, first, obs, known, tf.constant(dt, dtype),
                                          tf.constant(bound, dtype))
    out = np.full((data.n_traj, n_steps, data.n_obs), np.nan)
    out[:, :context] = data.observed[:, :context]
    out[:, context:] = predicted.numpy()
    return out, _absolute_step(diverged_at.numpy(), context)


def _absolute_step(local: np.ndarray, context: int) -> np.ndarray:
    """Loop-local divergence indices (−1: none) as step indices of the whole series."""
    return np.where(local >= 0, local + context, -1)


@tf.function(reduce_retracing=True)
def _window_loop(network, window, obs, known, dt, bound):
    n_new = tf.shape(known)[1]
    batch = tf.shape(obs)[0]
    outputs = tf.TensorArray(obs.dtype, size=n_new)
    diverged_at = tf.fill([batch], tf.constant(-1, tf.int64))
    alive = tf.ones([batch], tf.bool)
    nan = tf.constant(np.nan, obs.dtype)
    for i in tf.range(n_new):
        g = network(window, training=False)
        nxt = obs + dt * g
        bad = alive & ~(tf.reduce_all(tf.math.is_finite(nxt), -1) & tf.reduce_all(tf.abs(nxt) <= bound, -1))
        diverged_at = tf.where(bad, tf.cast(i, tf.int64), diverged_at)
        alive = alive & ~bad
        nxt = tf.where(alive[:, None], nxt, tf.zeros_like(nxt))  # keep the loop finite for the others
        outputs = outputs.write(i, tf.where(alive[:, None], nxt, nan))
        step_in = tf.concat([nxt, known[:, i]], axis=-1)
        window = tf.concat([window[:, 1:], step_in[:, None]], axis=1)
        obs = nxt
    return tf.transpose(outputs.stack(), [1, 0, 2]), diverged_at


# ----------------------------------------------------------------------------------------------- linear flow map
class _NetworkModel(StepModel):
    """A model whose fitted state is a Keras network (saved inside the .keras file)."""

    network_: keras.Model

    def _network(self):
        return self.network_

    def _restore(self, network):
        self.network_ = network


class LinearFlowMap(_NetworkModel):
    """g = A·vec(u_{i−W+1..i}) + b by least squares (float64), rolled out in the same compiled loop."""

    kind = "linear"
    config_class = LinearConfig

    @property
    def min_context(self) -> int:
        return self.config.window

    def _fit(self, train, validation, **kwargs):
        w = self.config.window
        x, y = train.windows(w)
        x = x.reshape(len(x), -1)
        y = y[:, 0]
        # Standardised features for conditioning, then mapped back to the raw inputs.
        scaler = Scaler.fit(x)
        coef, intercept = ridge_readout(scaler.transform(x), y, self.config.ridge)
        kernel = coef / scaler.scale[:, None]
        intercept = intercept - scaler.mean @ kernel
        net = keras.Sequential([keras.Input((w, x.shape[1] // w), dtype="float64"),
                                keras.layers.Flatten(dtype="float64"),
                                keras.layers.Dense(y.shape[1], dtype="float64", name="flow_map")])
        net.get_layer("flow_map").set_weights([kernel, intercept])
        self.network_ = net
        self.history_ = {"train_mse": [float(np.mean((x @ kernel + intercept - y) ** 2))]}

    def _rollout(self, data, context, n_steps, bound):
        return _windowed_rollout(self.network_, data, self.config.window, context, n_steps, self.dt_, bound,
                                 "float64")


# ----------------------------------------------------------------------------------------------- scaling layer
@keras.saving.register_keras_serializable(package="physrnn")
class Standardize(keras.layers.Layer):
    """``(z − mean) / scale``, or its inverse, with mean and scale held as (non-trainable) weights.

    Keras' own Normalization layer keeps fitted statistics in its config, which loses float64 precision on
    saving; weights are saved bit for bit, so a reloaded model rolls out identically.
    """

    def __init__(self, size: int, *, invert: bool = False, **kwargs):
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

    def __init__(self, n_obs: int, dt: float, **kwargs):
        super().__init__(**kwargs)
        self.n_obs, self.dt = int(n_obs), float(dt)

    def call(self, inputs):
        value, window = inputs
        return (value - window[:, -1, : self.n_obs]) / self.dt

    def get_config(self):
        return {**super().get_config(), "n_obs": self.n_obs, "dt": self.dt}


def _standardize(scaler: Scaler, name: str, dtype: str, invert: bool = False) -> Standardize:
    layer = Standardize(len(scaler.mean), invert=invert, dtype=dtype, name=name)
    layer.set_statistics(scaler)
    return layer


# ----------------------------------------------------------------------------------------------- recurrent
class _StepTrainer(keras.Model):
    """Trains a window→g network one step ahead, or over K steps of its own closed-loop rollout."""

    def __init__(self, network, target_scale, dt, window, horizon, n_obs, dtype):
        super().__init__(dtype=dtype)
        self.network = network
        self.inv_scale = tf.constant(1.0 / target_scale, dtype)
        self.dt_step = tf.constant(dt, dtype)
        self.window, self.horizon, self.n_obs = window, horizon, n_obs
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.network(x[:, : self.window], training=training)

    def _loss(self, x, y, training):
        # Keras' data adapter may hand over floatx (float32) batches whatever the arrays were.
        x, y = tf.cast(x, self.inv_scale.dtype), tf.cast(y, self.inv_scale.dtype)
        w, n_obs = self.window, self.n_obs
        window = x[:, :w]
        obs = x[:, w - 1, :n_obs]
        total = 0.0
        for k in range(self.horizon):  # static: the horizon is a training setting
            g = self.network(window, training=training)
            total += tf.reduce_mean(tf.square((g - y[:, k]) * self.inv_scale))
            if k + 1 < self.horizon:
                obs = obs + self.dt_step * g
                step_in = tf.concat([obs, x[:, w + k, n_obs:]], axis=-1)
                window = tf.concat([window[:, 1:], step_in[:, None]], axis=1)
        return total / self.horizon

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self._loss(x, y, training=True)
        grads = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply(grads, self.network.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x, y = data
        self.loss_tracker.update_state(self._loss(x, y, training=False))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


def _refine(trainer: _StepTrainer, train, val, steps: int, dtype: str) -> dict[str, list[float]]:
    """Full-batch L-BFGS on the trainer's loss; keeps the result only if the validation loss improves."""
    from scipy.optimize import minimize

    variables = trainer.network.trainable_variables
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(s)) for s in shapes]
    x, y = (tf.constant(a, dtype) for a in train)

    @tf.function(jit_compile=True)  # XLA: several times faster per full-batch evaluation on the CPU
    def loss_and_grads(x, y):
        with tf.GradientTape() as tape:
            loss = trainer._loss(x, y, training=False)
        return loss, tape.gradient(loss, variables)

    def assign(flat: np.ndarray) -> None:
        for v, part, shape in zip(variables, np.split(flat, np.cumsum(sizes)[:-1]), shapes):
            v.assign(part.reshape(shape).astype(dtype))

    def fun(flat):
        assign(flat)
        loss, grads = loss_and_grads(x, y)
        # Relative to the starting loss: L-BFGS-B measures progress against max(|f|, 1), which would call a
        # loss of 1e-6 converged at once.
        return float(loss) / scale, np.concatenate([np.asarray(g, np.float64).ravel() for g in grads]) / scale

    def val_loss() -> float:
        data = val if val is not None else train
        return float(trainer._loss(tf.constant(data[0], dtype), tf.constant(data[1], dtype), training=False))

    start = np.concatenate([np.asarray(v, np.float64).ravel() for v in variables])
    before = val_loss()
    scale = max(float(loss_and_grads(x, y)[0]), np.finfo(float).tiny)
    result = minimize(fun, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": steps, "maxcor": 50, "ftol": 1e-15, "gtol": 1e-12})
    assign(result.x)
    after = val_loss()
    if not after < before:
        assign(start)
    return {"refine_loss": [float(result.fun) * scale], "refine_val_loss": [before, after],
            "refine_iterations": [int(result.nit)]}


_CELLS = {"simplernn": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


class RecurrentStepModel(_NetworkModel):
    """Keras SimpleRNN / GRU / LSTM step model: window of inputs → g, with standardised inputs and targets."""

    config_class = RecurrentConfig

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.config.cell

    @property
    def min_context(self) -> int:
        return self.config.window

    def _build(self, n_in: int, n_obs: int, in_scaler: Scaler, out_scaler: Scaler, dt: float) -> keras.Model:
        cfg, dtype = self.config, self.config.precision
        inp = keras.Input((cfg.window, n_in), dtype=dtype, name="window")
        z = _standardize(in_scaler, "input_scaling", dtype)(inp)
        for layer in range(cfg.layers):
            z = _CELLS[cfg.cell](cfg.units, return_sequences=layer + 1 < cfg.layers, dtype=dtype,
                                 name=f"{cfg.cell}_{layer}")(z)
        z = keras.layers.Dense(n_obs, dtype=dtype, name=f"{cfg.target}_scaled")(z)
        out = _standardize(out_scaler, cfg.target, dtype, invert=True)(z)
        if cfg.target == "value":
            out = IncrementFromValue(n_obs, dt, dtype=dtype, name="increment")([out, inp])
        return keras.Model(inp, out, name=f"{cfg.cell}_step_model")

    def _fit(self, train, validation, *, verbose: int | str = "auto", checkpoint_dir: str | None = None,
             callbacks: list | None = None):
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        x, y = train.windows(cfg.window, cfg.rollout_steps)
        in_scaler = Scaler.fit(train.inputs[:, :-1])
        increment_scaler = Scaler.fit(train.targets)
        out_scaler = increment_scaler if cfg.target == "increment" else Scaler.fit(train.observed[:, 1:])
        self.network_ = self._build(x.shape[-1], train.n_obs, in_scaler, out_scaler, train.dt)
        trainer = _StepTrainer(self.network_, increment_scaler.scale, train.dt, cfg.window, cfg.rollout_steps,
                               train.n_obs, cfg.precision)
        val = None
        if validation is not None:
            val = validation.windows(cfg.window, cfg.rollout_steps)
        monitor = "val_loss" if val is not None else "loss"
        cbs = [keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience, restore_best_weights=True)]
        rate: float | keras.optimizers.schedules.LearningRateSchedule = cfg.learning_rate
        if cfg.schedule == "cosine":
            steps = cfg.epochs * -(-len(x) // cfg.batch_size)
            rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=1e-3)
        else:
            cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                                         patience=max(1, cfg.patience // 2),
                                                         min_lr=cfg.learning_rate * 1e-3))
        trainer.compile(optimizer=keras.optimizers.Adam(rate, clipnorm=cfg.clipnorm or None))
        trainer(x[:1].astype(cfg.precision))  # built before fit: BackupAndRestore needs its variables
        if checkpoint_dir is not None:
            # A killed training resumes from the last completed epoch when run again with the same directory.
            cbs.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir), delete_checkpoint=True))
        cbs += list(callbacks or [])
        history = trainer.fit(x.astype(cfg.precision), y.astype(cfg.precision), validation_data=None if val is None
                              else (val[0].astype(cfg.precision), val[1].astype(cfg.precision)),
                              epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=verbose,
                              callbacks=cbs)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if cfg.refine_steps:
            self.history_.update(_refine(trainer, (x, y), val, cfg.refine_steps, cfg.precision))

    def _rollout(self, data, context, n_steps, bound):
        return _windowed_rollout(self.network_, data, self.config.window, context, n_steps, self.dt_, bound,
                                 self.config.precision)


# ----------------------------------------------------------------------------------------------- echo-state
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


class EchoStateNetwork(_NetworkModel):
    """Reservoir (Keras layer) + ridge readout; trained and rolled out statefully from a zero reservoir."""

    kind = "esn"
    config_class = EchoStateConfig

    @property
    def min_context(self) -> int:
        return self.config.washout + 1

    def _build(self, n_in: int, n_obs: int, in_scaler: Scaler, out_scaler: Scaler) -> keras.Model:
        cfg, dtype = self.config, self.config.precision
        inp = keras.Input((None, n_in), dtype=dtype, name="inputs")
        u = _standardize(in_scaler, "input_scaling", dtype)(inp)
        cell = EchoStateCell(cfg.units, spectral_radius=cfg.spectral_radius, leak_rate=cfg.leak_rate,
                             input_scaling=cfg.input_scaling, connectivity=cfg.connectivity, bias=cfg.bias,
                             seed=cfg.seed, dtype=dtype, name="reservoir_cell")
        h = keras.layers.RNN(cell, return_sequences=True, dtype=dtype, name="reservoir")(u)
        features = keras.layers.Concatenate(dtype=dtype, name="features")([h, u]) if cfg.input_to_readout else h
        z = keras.layers.Dense(n_obs, dtype=dtype, name="readout")(features)
        out = _standardize(out_scaler, "increment", dtype, invert=True)(z)
        return keras.Model(inp, out, name="echo_state_network")

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """Readout features (reservoir state, and the scaled input if ``input_to_readout``) along sequences."""
        feats = keras.Model(self.network_.input, self.network_.get_layer("readout").input)
        return np.asarray(feats.predict(inputs.astype(self.config.precision), verbose=0, batch_size=len(inputs)))

    def _fit(self, train, validation, **kwargs):
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
        return out, _absolute_step(diverged_at.numpy(), context)


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
        bad = alive & ~(tf.reduce_all(tf.math.is_finite(nxt), -1) & tf.reduce_all(tf.abs(nxt) <= bound, -1))
        diverged_at = tf.where(bad, tf.cast(i, tf.int64), diverged_at)
        alive = alive & ~bad
        nxt = tf.where(alive[:, None], nxt, tf.zeros_like(nxt))
        h = tf.where(alive[:, None], h, tf.zeros_like(h))
        outputs = outputs.write(i, tf.where(alive[:, None], nxt, nan))
        obs = nxt
    return tf.transpose(outputs.stack(), [1, 0, 2]), diverged_at


def ridge_readout(features: np.ndarray, targets: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Readout ``targets ≈ features · W + b`` minimising ``‖·‖² + ridge ‖W‖²`` (the intercept unpenalised).

    Solved on centred features as the least-squares problem ``[X; √ridge I] W ≈ [T; 0]`` by a QR
    factorisation: as stable as an SVD (no squared condition number, unlike the normal equations) and
    several times faster. ``ridge = 0`` takes the minimum-norm solution through an SVD (NumPy's lstsq),
    which also copes with rank-deficient features. Returns (W of shape (n_features, n_out), b of shape
    (n_out,)).
    """
    from scipy.linalg import qr, solve_triangular

    mean_f, mean_t = features.mean(axis=0), targets.mean(axis=0)
    fc, tc = features - mean_f, targets - mean_t
    if ridge > 0:
        n = fc.shape[1]
        q, r = qr(np.vstack([fc, np.sqrt(ridge) * np.eye(n)]), mode="economic", check_finite=False)
        kernel = solve_triangular(r, q[: len(fc)].T @ tc, check_finite=False)
    else:
        kernel = np.linalg.lstsq(fc, tc, rcond=None)[0]
    return kernel, mean_t - mean_f @ kernel


# ----------------------------------------------------------------------------------------------- factory
_CLASSES: dict[str, type[StepModel]] = {
    "simplernn": RecurrentStepModel, "gru": RecurrentStepModel, "lstm": RecurrentStepModel,
    "esn": EchoStateNetwork, "linear": LinearFlowMap, "persistence": Persistence, "euler": EulerBaseline,
    "rk4": RK4Baseline,
}


def build_model(kind: str, **settings: Any) -> StepModel:
    """A model of type ``kind`` with the given settings (validated; unknown settings are rejected)."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown model type {kind!r}; choose one of {', '.join(MODEL_TYPES)}")
    cls = _CLASSES[kind]
    allowed = [f.name for f in fields(cls.config_class)]
    if cls is RecurrentStepModel:
        allowed.remove("cell")
        settings = {**settings, "cell": kind}
    unknown = sorted(set(settings) - set(allowed) - ({"cell"} if cls is RecurrentStepModel else set()))
    if unknown:
        raise ValueError(f"unknown setting{'s' if len(unknown) > 1 else ''} for a {kind} model: {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed) or 'none'}")
    return cls(cls.config_class(**settings))
