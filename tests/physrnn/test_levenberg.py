"""The Levenberg–Marquardt trainer: exact on a linear least-squares problem, far below Adam on a small GRU, keeps
the best validation weights, shows Keras-style progress; and the NumPy echo-state pass against the Keras layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from physrnn.models import build_model
from physrnn.models.esn import _Weights, ridge_cholesky
from physrnn.models.levenberg import levenberg_marquardt, preconditioner
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


def _exp_problem(rng):
    """exp(x·a + b) to fit from zero weights (one Dense layer with an exp activation), with its exact a, b."""
    n, window, n_in, n_obs = 400, 2, 3, 2
    x = rng.standard_normal((n, window, n_in))
    a, b = 0.7 * rng.standard_normal((window * n_in, n_obs)), 0.7 * rng.standard_normal(n_obs)
    y = np.exp(x.reshape(n, -1) @ a + b)[:, None]
    net = keras.Sequential([keras.Input((window, n_in), dtype="float64"), keras.layers.Flatten(dtype="float64"),
                            keras.layers.Dense(n_obs, activation=keras.ops.exp, dtype="float64", name="map",
                                               kernel_initializer="zeros", bias_initializer="zeros")])
    return StepTrainer(net, np.ones(n_obs), 0.1, window, 1, n_obs, "float64"), x, y, a, b


def test_levenberg_marquardt_rejects_gauss_newton_steps_that_overshoot(rng):
    # exp(x·a + b) fitted from zero weights: the linearised model misses the exponential's growth, so the first
    # lightly damped Gauss–Newton steps overshoot by orders of magnitude (the loss would jump to ~1e15). Only
    # rejecting them and raising the damping reaches the exact weights; deterministic, as the margins are huge.
    trainer, x, y, a, b = _exp_problem(rng)
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
    with pytest.raises(ValueError, match=r"refine = 'lm' runs in float64, got precision = 'float32'; set precision = "
                                         r"'float64' \(or refine = 'lbfgs'\)$"):
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


def test_a_float32_echo_state_network_runs_its_numpy_pass_in_float32(small_train, held_out):
    # precision = "float32" is kept by the NumPy pass as well as the Keras layers: its states are float32 and
    # agree with the Keras network to float32 rounding (not to float64's).
    model = build_model("esn", units=30, washout=20, precision="float32").fit(small_train)
    weights = _Weights.of(model.network_, "float32")
    assert weights.dtype == np.float32 and weights.recurrent_kernel.dtype == np.float32
    u = held_out.inputs[:, :200]
    states = weights.run(weights.scale(u), np.zeros((len(u), 30), np.float32))
    assert states.dtype == np.float32
    numpy_g = weights.increment(states, weights.scale(u))
    keras_g = np.asarray(model.network_(tf.constant(u, tf.float32)))
    np.testing.assert_allclose(numpy_g, keras_g, rtol=0, atol=1e-4)


def test_an_echo_state_rollout_goes_on_unchanged_for_the_others_when_one_trajectory_diverges(small_train):
    # Three trajectories, the third ten times larger than the bound allows: it is flagged at its first closed-loop
    # step and set aside, and the other two roll out exactly as they do on their own.
    import physrnn as pr

    data = pr.StepData.from_trajectories(pr.simulate(
        system="oscillator", n_traj=3, dt=0.05, t_end=5.0, seed=1, damping=0.2, drive_amplitude=0.5,
        drive_frequency=1.3, x0={"values": [0.2, -0.3, 12.0]}, v0=0.0))
    model = build_model("esn", units=30, washout=20).fit(small_train)
    both = model.rollout(data, bound=5.0)
    alone = model.rollout(data.take(np.array([0, 1])), bound=5.0)
    assert both.diverged_at.tolist() == [-1, -1, both.context]
    np.testing.assert_array_equal(both.observed[:2], alone.observed)
    assert np.isnan(both.observed[2, both.context:]).all()


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


def test_levenberg_marquardt_follows_nielsens_damping_rule_step_by_step(rng):
    # The rule, replayed on the recorded sequence (the end point alone would pass a slower or wrong rule): a step
    # is taken exactly when its gain ratio ρ > 0; then λ ← λ·max(1/3, 1 − (2ρ − 1)³) and ν ← 2; a refused step
    # leaves the loss where it was and multiplies λ by ν, doubling ν (2, 4, 8, ... over consecutive refusals).
    trainer, x, y, *_ = _exp_problem(rng)
    h = levenberg_marquardt(trainer, (x, y), None, steps=30, patience=30, dtype="float64")
    rho, accepted, damping, loss = (np.asarray(h[k]) for k in ("lm_rho", "lm_accepted", "lm_damping", "lm_loss"))
    assert accepted.sum() >= 5 and (accepted == 0).sum() >= 2  # both branches are exercised
    np.testing.assert_array_equal(accepted, (rho > 0).astype(int))
    nu = 2.0 if accepted[0] else 4.0  # iteration 0 used ν = 2 from the start
    for k in range(1, len(loss)):
        if accepted[k]:
            assert loss[k] < loss[k - 1]
            expected = damping[k - 1] * max(1 / 3, 1 - (2 * rho[k] - 1) ** 3)
            assert damping[k] == pytest.approx(max(expected, 0.0), rel=1e-12), k
            nu = 2.0
        else:
            assert loss[k] == loss[k - 1]
            assert damping[k] == pytest.approx(damping[k - 1] * nu, rel=1e-12), k
            nu *= 2
    # The first refusals come before any step is taken (the undamped Gauss–Newton step overshoots), so ν's
    # doubling is seen: λ grows by 2 then 4 then ...
    first = int(np.argmax(accepted))
    assert first >= 2


def test_conjugate_gradients_stop_at_the_tolerance_or_the_budget(rng):
    # With a budget larger than the 14 weights, every CG solve ends by the relative-residual test, at or below
    # 1e-5; with a budget of 2 it ends by the budget, above it.
    trainer, x, y, *_ = _linear_problem(rng)
    h = levenberg_marquardt(trainer, (x, y), None, steps=6, patience=6, dtype="float64", cg_steps=40)
    assert all(0 < c < 40 for c in h["lm_cg"]), h["lm_cg"]
    assert max(h["lm_cg_residual"]) <= 1e-5 and min(h["lm_cg_residual"]) > 1e-12
    trainer, x, y, *_ = _linear_problem(np.random.default_rng(3))
    h = levenberg_marquardt(trainer, (x, y), None, steps=3, patience=3, dtype="float64", cg_steps=2)
    assert h["lm_cg"] == [2, 2, 2] and min(h["lm_cg_residual"]) > 1e-5


def test_patience_counts_iterations_without_a_tenth_of_a_percent_improvement(rng):
    # Replayed on the validation sequence: an iteration is an improvement only when it lowers the best validation
    # loss by more than 0.1 %; training stops after `patience` iterations without one. The weights kept are the
    # lowest validation loss seen, improvement or not.
    trainer, x, y, a, b = _linear_problem(rng)
    x_val = rng.standard_normal(x.shape)
    y_val = (x_val.reshape(len(x_val), -1) @ a + b)[:, None] + 1e-3 * rng.standard_normal((len(x_val), 1, 2))
    h = levenberg_marquardt(trainer, (x, y), (x_val, y_val), steps=60, patience=4, dtype="float64")
    val = np.asarray(h["lm_val_loss"])
    initial = h["lm_initial_val_loss"][0]
    best, stale, stop = initial, 0, None
    for k, v in enumerate(val):
        if v < best * (1 - 1e-3):
            best, stale = v, 0
        else:
            stale += 1
            best = min(best, v)
        if stale >= 4:
            stop = k + 1
            break
    assert stop is not None and len(val) == stop < 60  # it stopped by patience, where the rule says
    assert h["lm_best_val_loss"][0] == min(initial, val.min())


def test_the_preconditioner_is_the_damped_diagonal_to_the_minus_three_quarters():
    # Martens' rule, at values where the power shows: (16 + 0)^(−¾) = 1/8, (0.5 + 0.5)^(−¾) = 1, (81 − 65)^(−¾).
    np.testing.assert_allclose(preconditioner(np.array([16.0, 0.5, 81.0]), np.array([0.0, 0.5, -65.0])),
                               [1 / 8, 1.0, 1 / 8], rtol=1e-15)


def test_callbacks_get_each_iterations_losses_and_the_time_it_took(small_train, small_val):
    import keras

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, dict(logs)))

    build_model("simplernn", units=4, window=2, epochs=1, precision="float64", refine_steps=2,
                cg_steps=3).fit(small_train, small_val, verbose=0, callbacks=[Record()])
    refine = [logs for _, logs in seen if "seconds" in logs]
    assert len(refine) == 2 and all(0 < logs["seconds"] < 600 and "val_loss" in logs for logs in refine)
    assert refine[1]["seconds"] >= refine[0]["seconds"]  # time since the refinement began
