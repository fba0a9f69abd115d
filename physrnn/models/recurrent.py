"""Keras SimpleRNN / GRU / LSTM step models and their trainer (Adam, then optional Levenberg–Marquardt or L-BFGS).

A window of the last ``window`` inputs, from a zero state, gives the increment g; training is one step ahead
(teacher forcing on the window) or through the model's own rollout over ``rollout_steps`` steps.
"""

from __future__ import annotations

import hashlib
import json
import random
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..data import Scaler, angle_columns, angle_features
from .configs import RecurrentConfig
from .layers import AngleFeatures, IncrementFromValue, PlaneFrame, plane_frame, standardize
from .levenberg import levenberg_marquardt
from .linear import NetworkModel
from .rollout import window_jacobian, windowed_rollout
from .selection import closed_loop_scores

__all__ = ["GRU", "LSTM", "RecurrentStepModel", "SimpleRNN", "TrainedNetworkModel", "rotation_pairs"]


@contextmanager
def seeded(seed: int):
    """Seed Python, NumPy, TensorFlow and Keras for one training, and put back what was there before.

    Keras draws initial weights and shuffles batches from these global generators; seeding them is how one
    seed gives the same network, byte for byte. Restoring them afterwards keeps ``fit`` free of side effects
    on the caller's own random state.
    """
    from keras.src.backend.common import global_state

    py_state, np_state = random.getstate(), np.random.get_state()
    tf_seed = tf.compat.v1.get_seed(None)[0]
    keras_seed = global_state.get_global_attribute("global_random_seed")
    keras_generator = global_state.get_global_attribute("global_seed_generator")
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        tf.random.set_seed(tf_seed)
        global_state.set_global_attribute("global_random_seed", keras_seed)
        global_state.set_global_attribute("global_seed_generator", keras_generator)


class StepTrainer(keras.Model):
    """Trains a window→g network one step ahead, or over K steps of its own closed-loop rollout."""

    def __init__(self, network, target_scale, dt, window, horizon, n_obs, dtype):  # pragma: no mutate block (Keras reads this signature)
        super().__init__(dtype=dtype)
        self.network = network
        self.inv_scale = tf.constant(1.0 / target_scale, dtype)
        self.dt_step = tf.constant(dt, dtype)
        self.window, self.horizon, self.n_obs = window, horizon, n_obs
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.network(x[:, : self.window], training=training)

    def horizon_errors(self, call, x, y):
        """Errors of ``call`` (window → g) over the horizon, in units of the increment's spread:
        shape (batch, horizon, n_obs). The first step reads the true window; each later one, the model's own."""
        # Keras' data adapter may hand over floatx (float32) batches whatever the arrays were.
        x, y = tf.cast(x, self.inv_scale.dtype), tf.cast(y, self.inv_scale.dtype)
        w, n_obs = self.window, self.n_obs
        window = x[:, :w]
        obs = x[:, w - 1, :n_obs]
        errors = []
        for k in range(self.horizon):  # static: the horizon is a training setting
            g = call(window)
            errors.append((g - y[:, k]) * self.inv_scale)
            if k + 1 < self.horizon:
                obs = obs + self.dt_step * g
                step_in = tf.concat([obs, x[:, w + k, n_obs:]], axis=-1)
                window = tf.concat([window[:, 1:], step_in[:, None]], axis=1)
        return tf.stack(errors, axis=1)

    def step_loss(self, x, y, training):
        """Mean squared error over windows, horizon and outputs (the loss every trainer minimises)."""
        return tf.reduce_mean(tf.square(self.horizon_errors(
            lambda window: self.network(window, training=training), x, y)))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.step_loss(x, y, training=True)
        grads = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply(grads, self.network.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x, y = data
        self.loss_tracker.update_state(self.step_loss(x, y, training=False))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


def _refine(trainer: StepTrainer, train, val, steps: int, dtype: str, callbacks=()) -> dict[str, list[float]]:
    """Full-batch L-BFGS on the trainer's loss; keeps the result only if the validation loss improves.

    ``callbacks`` (Keras callbacks) get ``on_epoch_end(iteration, {"loss": ...})`` after every iteration, with
    the network holding that iterate's weights.
    """
    from scipy.optimize import minimize

    variables = trainer.network.trainable_variables
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(s)) for s in shapes]
    x, y = (tf.constant(a, dtype) for a in train)

    @tf.function(jit_compile=True)  # XLA: several times faster per full-batch evaluation on the CPU
    def loss_and_grads(x, y):
        with tf.GradientTape() as tape:
            loss = trainer.step_loss(x, y, training=False)
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
        return float(trainer.step_loss(tf.constant(data[0], dtype), tf.constant(data[1], dtype), training=False))

    start = np.concatenate([np.asarray(v, np.float64).ravel() for v in variables])
    before = val_loss()
    scale = max(float(loss_and_grads(x, y)[0]), np.finfo(float).tiny)
    callbacks = list(callbacks or [])

    def report(intermediate_result):  # SciPy passes the iterate by this name
        assign(intermediate_result.x)
        for cb in callbacks:
            cb.on_epoch_end(report.iteration, {"loss": float(intermediate_result.fun) * scale})
        report.iteration += 1

    report.iteration = 0
    result = minimize(fun, start, jac=True, method="L-BFGS-B", callback=report if callbacks else None,
                      options={"maxiter": steps, "maxcor": 50, "ftol": 1e-15, "gtol": 1e-12})
    assign(result.x)
    after = val_loss()
    if not after < before:
        assign(start)
    return {"refine_loss": [float(result.fun) * scale], "refine_val_loss": [before, after],
            "refine_iterations": [int(result.nit)]}


_CELLS = {"simplernn": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


class TrainedNetworkModel(NetworkModel):
    """A Keras network from a window of inputs to g, trained by Adam on the one-step or multi-step loss and then
    (optionally) by Levenberg–Marquardt or L-BFGS, and rolled out in the compiled windowed loop. A subclass
    builds the network (:meth:`_network_for`); its config holds the training settings (``window``, ``epochs``,
    ``rollout_steps``, ``refine_steps``, …)."""

    def _network_for(self, train, n_in: int) -> keras.Model:
        """The untrained network for windows of ``n_in`` inputs of the data ``train``."""
        raise NotImplementedError

    def uses_validation(self) -> bool:
        return True  # early stopping, and the second-order trainer's stall and kept weights

    def _fit(self, train, validation, *, verbose, checkpoint_dir, callbacks):
        with seeded(self.config.seed):
            self._train(train, validation, verbose=verbose, checkpoint_dir=checkpoint_dir, callbacks=callbacks)

    def _train(self, train, validation, *, verbose, checkpoint_dir, callbacks):
        cfg = self.config
        if cfg.horizons and validation is None:
            raise ValueError(f"the {self.kind} model's horizons are chosen on the closed loops of validation "
                             "trajectories: pass validation data to fit(), or leave horizons out")
        x, y = train.windows(cfg.window, cfg.rollout_steps)
        self.network_ = self._network_for(train, x.shape[-1])
        self._increment_scale = Scaler.fit(train.targets).scale  # the loss's unit, for every stage of training
        trainer = StepTrainer(self.network_, self._increment_scale, train.dt, cfg.window, cfg.rollout_steps,
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
            # A killed training resumes from the last completed epoch when run again with the same directory
            # (Keras removes the directory when training completes).
            _claim_checkpoint(checkpoint_dir, self.kind, cfg, train, x, y)
            cbs.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir), delete_checkpoint=True))
        cbs += list(callbacks or [])
        history = trainer.fit(x.astype(cfg.precision), y.astype(cfg.precision), validation_data=None if val is None
                              else (val[0].astype(cfg.precision), val[1].astype(cfg.precision)),
                              epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=verbose,
                              callbacks=cbs)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if cfg.refine_steps and cfg.refine == "lm":
            self.history_.update(levenberg_marquardt(trainer, (x, y), val, steps=cfg.refine_steps,
                                                     patience=cfg.patience, dtype=cfg.precision,
                                                     cg_steps=cfg.cg_steps, verbose=verbose, callbacks=callbacks))
        elif cfg.refine_steps:
            self.history_.update(_refine(trainer, (x, y), val, cfg.refine_steps, cfg.precision, callbacks))
        if cfg.horizons:
            self.history_.update(self._curriculum(train, validation, verbose=verbose, callbacks=callbacks))

    def _curriculum(self, train, validation, *, verbose, callbacks) -> dict[str, list[float]]:
        """Levenberg–Marquardt on each of ``horizons`` in turn, from where the last stage ended; the stage whose
        validation closed loops err least keeps its weights (see the config's ``horizons``). Returns the record:
        per stage (the first is the training before the curriculum) its horizon, closed-loop divergences and
        RMSE, LM iterations and best validation loss; and the stage kept."""
        cfg = self.config
        spread = np.std(train.observed.reshape(-1, train.n_obs), axis=0)

        def score() -> tuple[float, float]:
            observed, _ = self._rollout(validation, self.min_context, validation.observed.shape[1], self.bound_)
            diverged, rmse = closed_loop_scores(observed[None], validation.observed, self.min_context, spread)
            return float(diverged[0]), float(rmse[0])

        record = {"curriculum_horizons": [cfg.rollout_steps], "curriculum_val_diverged": [], "curriculum_val_rmse": [],
                  "curriculum_lm_iterations": [len(self.history_.get("lm_loss", ()))],
                  "curriculum_lm_best_val_loss": [self.history_.get("lm_best_val_loss", [np.nan])[-1]]}
        stages = [self.network_.get_weights()]
        for horizon in cfg.horizons:
            diverged, rmse = score()
            record["curriculum_val_diverged"].append(diverged)
            record["curriculum_val_rmse"].append(rmse)
            # Every horizon-th window: about as many residuals as one-step training, each horizon steps deep.
            x, y = (a[::horizon] for a in train.windows(cfg.window, horizon))
            val = tuple(a[::horizon] for a in validation.windows(cfg.window, horizon))
            trainer = StepTrainer(self.network_, self._increment_scale, train.dt, cfg.window, horizon, train.n_obs,
                                  cfg.precision)
            stage = levenberg_marquardt(trainer, (x, y), val, steps=cfg.refine_steps, patience=cfg.patience,
                                        dtype=cfg.precision, cg_steps=cfg.cg_steps, verbose=verbose,
                                        callbacks=callbacks)
            record["curriculum_horizons"].append(horizon)
            record["curriculum_lm_iterations"].append(stage["lm_iterations"][0])
            record["curriculum_lm_best_val_loss"].append(stage["lm_best_val_loss"][0])
            stages.append(self.network_.get_weights())
        diverged, rmse = score()
        record["curriculum_val_diverged"].append(diverged)
        record["curriculum_val_rmse"].append(rmse)
        # Fewest diverged, then the lowest error; a tie keeps the earlier (shorter-horizon) stage.
        kept = min(range(len(stages)), key=lambda i: (record["curriculum_val_diverged"][i],
                                                      record["curriculum_val_rmse"][i], i))
        self.network_.set_weights(stages[kept])
        record["curriculum_kept"] = [kept]
        return record

    def _rollout(self, data, context, n_steps, bound):
        return windowed_rollout(self.network_, data, self.config.window, context, n_steps, self.dt_, bound,
                                 self.config.precision)

    def _step_jacobian(self, data, steps):
        return window_jacobian(self.network_, data, self.config.window, steps, self.dt_, self.config.precision)


class RecurrentStepModel(TrainedNetworkModel):
    """Keras SimpleRNN / GRU / LSTM step model: window of inputs → g, with standardised inputs and targets.

    The cell is the config's; :class:`SimpleRNN`, :class:`GRU` and :class:`LSTM` pin it.
    """

    config_class = RecurrentConfig

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.config.cell

    def _network_for(self, train, n_in: int) -> keras.Model:
        cfg = self.config
        self._angle_columns = angle_columns(cfg.angles, train.state_names)
        self._pairs = rotation_pairs(train.system, train.state_names) if cfg.rotation else ()
        inputs, targets, values = train.inputs[:, :-1], train.targets, train.observed[:, 1:]
        if self._pairs:  # the scalings of what the network sees: each step in its own co-rotating frame
            inputs = plane_frame(inputs, self._pairs)
            targets = plane_frame(targets, self._pairs, angle_from=train.observed[:, :-1])
            values = plane_frame(values, self._pairs, angle_from=train.observed[:, :-1])
        in_scaler = Scaler.fit(angle_features(inputs, self._angle_columns))
        increment_scaler = Scaler.fit(targets)
        out_scaler = increment_scaler if cfg.target == "increment" else Scaler.fit(values)
        return self._build(n_in, train.n_obs, in_scaler, out_scaler, train.dt)

    def _build(self, n_in: int, n_obs: int, in_scaler: Scaler, out_scaler: Scaler, dt: float) -> keras.Model:
        cfg, dtype = self.config, self.config.precision
        inp = keras.Input((cfg.window, n_in), dtype=dtype, name="window")
        z = inp
        if self._pairs:
            z = PlaneFrame(self._pairs, dtype=dtype, name="co_rotating")(z)
        if self._angle_columns:
            z = AngleFeatures(n_in, self._angle_columns, dtype=dtype, name="angles")(z)
        z = standardize(in_scaler, "input_scaling", dtype)(z)
        for layer in range(cfg.layers):
            z = _CELLS[cfg.cell](cfg.units, return_sequences=layer + 1 < cfg.layers, dtype=dtype,
                                 name=f"{cfg.cell}_{layer}")(z)
        z = keras.layers.Dense(n_obs, dtype=dtype, name=f"{cfg.target}_scaled")(z)
        out = standardize(out_scaler, cfg.target, dtype, invert=True)(z)
        if cfg.target == "value":
            if self._pairs:  # the value turned back first: o_i is in the fixed frame
                out = PlaneFrame(self._pairs, invert=True, dtype=dtype, name="value_turned_back")([out, inp])
            out = IncrementFromValue(n_obs, dt, dtype=dtype, name="increment")([out, inp])
        elif self._pairs:
            out = PlaneFrame(self._pairs, invert=True, dtype=dtype, name="turned_back")([out, inp])
        return keras.Model(inp, out, name=f"{cfg.cell}_step_model")


def rotation_pairs(system, state_names) -> tuple[tuple[int, int], ...]:
    """The observed columns of each planar vector ``system`` declares to turn under its rotational symmetry
    (``ROTATIONS``); refused in one line where it declares none or a vector is not observed whole."""
    declared = getattr(system, "ROTATIONS", ())
    names = list(state_names)
    if not declared or not all(a in names and b in names for a, b in declared):
        what = "these data's system declares" if system is None else f"the {system.system} system declares"
        raise ValueError(f"rotation = true turns the planar vectors a system declares, and {what} "
                         f"{[list(v) for v in declared] or 'none'} among the observed {', '.join(names)}; set "
                         "rotation = false")
    return tuple((names.index(a), names.index(b)) for a, b in declared)


_CHECKPOINT_STAMP = "physrnn-checkpoint.json"


def _claim_checkpoint(directory, kind: str, config: RecurrentConfig, train, x: np.ndarray, y: np.ndarray) -> None:
    """Make ``directory`` this training's checkpoint directory, or refuse one left by another training.

    The stamp holds a fingerprint of what determines the training (the model kind and settings, the features
    and the training windows): Keras would otherwise restore another network's weights into this one, or fail
    with a shape error about its variables."""
    directory = Path(directory)
    h = hashlib.sha256(json.dumps([kind, asdict(config), train.spec.to_config()], sort_keys=True).encode())
    h.update(np.ascontiguousarray(x, "<f8").tobytes())
    h.update(np.ascontiguousarray(y, "<f8").tobytes())
    stamp = {"kind": kind, "fingerprint": h.hexdigest()}
    path = directory / _CHECKPOINT_STAMP
    if directory.is_dir() and any(directory.iterdir()):
        found = json.loads(path.read_text()) if path.is_file() else None
        if found != stamp:
            what = f"a {found['kind']} training with other settings or data" if found else "files physrnn did not write"
            raise ValueError(f"checkpoint directory '{directory}' holds {what}; give an empty or new directory, or "
                             "delete it to start over")
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamp))


class SimpleRNN(RecurrentStepModel):
    """A SimpleRNN step model: ``SimpleRNN(units=32, window=8, ...)`` (settings: :class:`RecurrentConfig`)."""

    kind = "simplernn"


class GRU(RecurrentStepModel):
    """A GRU step model: ``GRU(units=32, window=8, ...)`` (settings: :class:`RecurrentConfig`)."""

    kind = "gru"


class LSTM(RecurrentStepModel):
    """An LSTM step model: ``LSTM(units=32, window=8, ...)`` (settings: :class:`RecurrentConfig`)."""

    kind = "lstm"
