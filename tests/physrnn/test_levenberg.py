"""The Levenberg–Marquardt trainer: exact on a linear least-squares problem, far below Adam on a small GRU, keeps
the best validation weights, shows Keras-style progress; and the NumPy echo-state pass against the Keras layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from physrnn.models import build_model
from physrnn.models.esn import _Weights, ridge_cholesky
from physrnn.models.levenberg import levenberg_marquardt
from physrnn.models.linear import ridge_readout
from physrnn.models.recurrent import StepTrainer


def _linear_problem(rng, n=400, window=2, n_in=3, n_obs=2):
    x = rng.standard_normal((n, window, n_in))
    a, b = rng.standard_normal((window * n_in, n_obs)), rng.standard_normal(n_obs)
    y = (x.reshape(n, -1) @ a + b)[:, None]  # (n, horizon 1, n_obs): residuals can reach zero
    net = keras.Sequential([keras.Input((window, n_in), dtype="float64"), keras.layers.Flatten(dtype="float64"),
                            keras.layers.Dense(n_obs, dtype="float64", name="map")])
    trainer = StepTrainer(net, np.ones(n_obs), 0.1, window, 1, n_obs, "float64")
    return trainer, x, y, a, b


def test_levenberg_marquardt_solves_a_linear_least_squares_problem_exactly(rng):
    trainer, x, y, a, b = _linear_problem(rng)
    history = levenberg_marquardt(trainer, (x, y), None, steps=30, patience=30, dtype="float64")
    kernel, bias = trainer.network.get_layer("map").get_weights()
    # Residuals linear in the 14 weights: each Gauss–Newton system is the exact normal equations, which CG
    # solves in at most 14 iterations, so the damped steps converge to the exact weights; 1e-8 leaves room
    # for the damping's last bias and rounding (the data are O(1), the normal matrix well conditioned).
    np.testing.assert_allclose(kernel, a, atol=1e-8)
    np.testing.assert_allclose(bias, b, atol=1e-8)
    assert history["lm_loss"][-1] < 1e-16
    assert all(np.diff(history["lm_loss"]) <= 0)  # only steps that lower the loss are taken


def test_levenberg_marquardt_rejects_gauss_newton_steps_that_overshoot(rng):
    # exp(x·a + b) fitted from zero weights: the linearised model misses the exponential's growth, so the first
    # lightly damped Gauss–Newton steps overshoot by orders of magnitude (the loss would jump to ~1e15). Only
    # rejecting them and raising the damping reaches the exact weights; deterministic, as the margins are huge.
    n, window, n_in, n_obs = 400, 2, 3, 2
    x = rng.standard_normal((n, window, n_in))
    a, b = 0.7 * rng.standard_normal((window * n_in, n_obs)), 0.7 * rng.standard_normal(n_obs)
    y = np.exp(x.reshape(n, -1) @ a + b)[:, None]
    net = keras.Sequential([keras.Input((window, n_in), dtype="float64"), keras.layers.Flatten(dtype="float64"),
                            keras.layers.Dense(n_obs, activation=keras.ops.exp, dtype="float64", name="map",
                                               kernel_initializer="zeros", bias_initializer="zeros")])
    trainer = StepTrainer(net, np.ones(n_obs), 0.1, window, 1, n_obs, "float64")
    history = levenberg_marquardt(trainer, (x, y), None, steps=30, patience=30, dtype="float64")
    assert history["lm_damping"][1] > history["lm_damping"][0]  # the first step was refused: more damping
    assert all(np.diff(history["lm_loss"]) <= 0)
    kernel, bias = trainer.network.get_layer("map").get_weights()
    np.testing.assert_allclose(kernel, a, atol=1e-8)  # converged (loss ~1e-16), as on the linear problem
    np.testing.assert_allclose(bias, b, atol=1e-8)


def test_levenberg_marquardt_ends_on_the_best_validation_weights_not_the_last(rng):
    trainer, x, y, a, b = _linear_problem(rng)
    other_a, other_b = a + 0.5, b - 0.5
    x_val = rng.standard_normal(x.shape)
    y_val = (x_val.reshape(len(x_val), -1) @ other_a + other_b)[:, None]
    # Start exactly at the validation set's map: every step towards the training map raises the validation
    # loss, so the best weights are the starting ones, which the trainer must hand back.
    trainer.network.get_layer("map").set_weights([other_a, other_b])
    history = levenberg_marquardt(trainer, (x, y), (x_val, y_val), steps=10, patience=3, dtype="float64")
    assert history["lm_best_val_loss"][0] < 1e-28  # the start: zero up to rounding
    assert history["lm_val_loss"][-1] > 1e-2  # where the steps went
    kernel, bias = trainer.network.get_layer("map").get_weights()
    np.testing.assert_array_equal(kernel, other_a)
    np.testing.assert_array_equal(bias, other_b)
    assert len(history["lm_loss"]) == 3  # patience: three iterations without a better validation loss


def test_levenberg_marquardt_refuses_float32(rng):
    trainer, x, y, *_ = _linear_problem(rng)
    with pytest.raises(ValueError, match=r"runs in float64, got precision = 'float32'"):
        levenberg_marquardt(trainer, (x, y), None, steps=1, patience=1, dtype="float32")
    with pytest.raises(ValueError, match=r"refine = 'lm' runs in float64, got precision = 'float32'"):
        build_model("gru", refine_steps=5, precision="float32")


@pytest.fixture(scope="module")
def lm_gru(small_train, small_val):
    return build_model("gru", units=8, window=2, epochs=3, batch_size=32, learning_rate=1e-2, precision="float64",
                       refine_steps=25, patience=25).fit(small_train, small_val, verbose=0)


def test_levenberg_marquardt_goes_far_below_adam_and_keeps_the_best_weights(lm_gru, small_train, small_val):
    history = lm_gru.history_
    adam = history["val_loss"][-1]
    best = history["lm_best_val_loss"][0]
    # Three Adam epochs stop near 1e-3 of the increment's variance; 25 Gauss–Newton iterations on this
    # 8-unit GRU (centuries of conditioning below what Adam's noise allows) must cut it a hundredfold.
    assert best < 1e-2 * adam, (adam, best)
    assert best == min(history["lm_val_loss"])
    # Only steps that lower the training loss are taken (a rejected step leaves it where it was). Whether this
    # run rejects any step varies with TensorFlow's threaded reductions, so this does not always see acceptance.
    assert np.all(np.diff(history["lm_loss"]) <= 0), history["lm_loss"]
    # The network holds the best iterate: its validation loss, recomputed here, is the recorded best.
    from physrnn.data import Scaler

    cfg = lm_gru.config
    x, y = small_val.windows(cfg.window, cfg.rollout_steps)
    trainer = StepTrainer(lm_gru.network_, Scaler.fit(small_train.targets).scale, small_val.dt, cfg.window,
                          cfg.rollout_steps, small_val.n_obs, "float64")
    np.testing.assert_allclose(float(trainer.step_loss(x, y, training=False)), best, rtol=1e-9)
    # Recurrent layers are rolled again after training (unrolled only while the trainer runs).
    assert not lm_gru.network_.get_layer("gru_0").unroll


def test_levenberg_marquardt_shows_keras_style_progress_and_takes_its_cg_budget(small_train, small_val, capsys):
    model = build_model("simplernn", units=4, window=2, epochs=1, precision="float64", refine_steps=2,
                        cg_steps=3).fit(small_train, small_val, verbose=2)
    out = capsys.readouterr().out
    assert "2/2" in out and "iteration" in out
    for name in ("loss:", "val_loss:", "damping:"):
        assert name in out, out
    # 3 CG iterations cannot solve a 4-unit network's damped Gauss–Newton system (about 40 weights) to the
    # 1e-5 relative residual, so each step uses the whole budget the model's setting gives it, and no more.
    assert model.history_["lm_cg"] == [3, 3]


def test_the_cg_budget_is_checked():
    with pytest.raises(ValueError, match=r"cg_steps must be an integer >= 1, got 0"):
        build_model("gru", cg_steps=0)


def test_the_echo_state_loop_in_numpy_is_the_keras_network(small_train, held_out):
    model = build_model("esn", units=40, washout=20).fit(small_train)
    u = held_out.inputs[:, :300]
    keras_g = np.asarray(model.network_(tf.constant(u)), np.float64)  # teacher-forced, through the Keras layers
    weights = _Weights.of(model.network_, "float64")
    scaled = weights.scale(u)
    states = weights.run(scaled, np.zeros((len(u), 40)))
    numpy_g = weights.increment(states, scaled)
    # Same float64 operations in a different order: agreement to rounding (g is O(1)). The old Keras pass
    # read its inputs through a float32 cast and differed by 1e-7.
    np.testing.assert_allclose(numpy_g, keras_g, rtol=0, atol=1e-12)
    # The closed loop's first step from the true context is that same map.
    rollout = model.rollout(held_out, n_steps=40)
    c = rollout.context
    expected = held_out.observed[:, c - 1] + held_out.dt * keras_g[:, c - 1]
    np.testing.assert_allclose(rollout.observed[:, c], expected, rtol=0, atol=1e-12)


def test_the_cholesky_readout_is_the_qr_readout(rng):
    f = rng.standard_normal((500, 30)) @ rng.standard_normal((30, 30))
    t = rng.standard_normal((500, 2))
    for ridge in (1e-8, 1.0):
        k1, b1 = ridge_cholesky(f, t, ridge)
        k2, b2 = ridge_readout(f, t, ridge)
        # The same minimiser; the normal equations square the condition number (here ~1e3 → 1e6), so they
        # agree to about 1e-16 × 1e6.
        np.testing.assert_allclose(k1, k2, rtol=0, atol=1e-9)
        np.testing.assert_allclose(b1, b2, rtol=0, atol=1e-9)
    # ridge = 0 is the minimum-norm solution, through the SVD.
    np.testing.assert_array_equal(ridge_cholesky(f, t, 0.0)[0], ridge_readout(f, t, 0.0)[0])
