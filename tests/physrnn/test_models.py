"""Models of the update: exact baselines, the ESN's closed-form readout, a small RNN that beats Euler,
save/load, determinism, divergence flags and input checks."""

import numpy as np
import pytest

import physrnn as pr
from physrnn.data import FeatureSpec
from physrnn.models import build_model, load_model, ridge_readout

from .conftest import _data

TINY_GRU = dict(units=8, window=2, epochs=25, batch_size=32, learning_rate=1e-2, patience=25)


def _rmse_x(rollout, data):
    return float(np.sqrt(np.mean((rollout.observed[0, :, 0] - data.observed[0, :, 0]) ** 2)))


@pytest.fixture(scope="module")
def tiny_gru(small_train, small_val):
    return build_model("gru", **TINY_GRU).fit(small_train, small_val, verbose=0)


def test_linear_baseline_is_exact_on_the_linear_oscillator(small_train, held_out):
    model = build_model("linear").fit(small_train)
    rollout = model.rollout(held_out)
    # The exact one-step map is affine in (x, v, cos Ωt, sin Ωt); least squares recovers it to rounding, and
    # a damped system does not amplify the per-step rounding (~1e-16) over 400 steps.
    np.testing.assert_allclose(rollout.observed, held_out.observed, rtol=0, atol=1e-10)


def test_linear_baseline_is_exact_from_position_alone():
    spec = FeatureSpec(system="oscillator", observation="position")
    train, test = _data(spec, n_traj=6, t_end=10.0), _data(spec, n_traj=2, t_end=20.0, seed=9)
    # Two past positions fix (x, v) of a linear system, so a window of 2 is again exactly affine.
    rollout = build_model("linear", window=2).fit(train).rollout(test)
    np.testing.assert_allclose(rollout.observed, test.observed, rtol=0, atol=1e-9)


def test_physics_baselines(small_train, held_out):
    from simulators import solve

    euler = build_model("euler").fit(small_train).rollout(held_out)
    expected = solve(held_out.system, held_out.observed[:, 0], held_out.time, method="euler")
    np.testing.assert_allclose(euler.observed, expected, rtol=0, atol=1e-12)  # the same update, same order
    rk4 = build_model("rk4").fit(small_train).rollout(held_out)
    # RK4's global error at Δt = 0.05 is ~1e-7 here; Euler's is ~0.05: they must differ by orders.
    assert _rmse_x(rk4, held_out) < 1e-6 < 0.01 < _rmse_x(euler, held_out)
    persistence = build_model("persistence").fit(small_train).rollout(held_out)
    np.testing.assert_array_equal(persistence.observed, np.broadcast_to(held_out.observed[:, :1],
                                                                        persistence.observed.shape))


def test_physics_baselines_under_position_observation():
    # Euler and RK4 step the true full state from the end of the context; seen through x they must give
    # exactly the x column of the full-observation rollout.
    full, position = FeatureSpec(system="oscillator"), FeatureSpec(system="oscillator", observation="position")
    test_full, test_x = _data(full, n_traj=2, t_end=10.0, seed=9), _data(position, n_traj=2, t_end=10.0, seed=9)
    for kind in ("euler", "rk4"):
        seen = build_model(kind).fit(test_x).rollout(test_x, context=3)
        whole = build_model(kind).fit(test_full).rollout(test_full, context=3)
        assert seen.observed.shape == (2, 201, 1)
        np.testing.assert_array_equal(seen.observed[..., 0], whole.observed[..., 0])


def test_value_target_is_the_same_update_seen_differently(small_train, small_val, held_out, tmp_path):
    # A network predicting the next value is rolled out through g = (value − o_i)/Δt: after training, its
    # one-step prediction from true inputs must equal o_i + Δt·g to rounding, and it saves and reloads.
    model = build_model("simplernn", units=8, window=3, epochs=2, target="value").fit(small_train, small_val,
                                                                                    verbose=0)
    assert [layer.name for layer in model.network_.layers][-2:] == ["value", "increment"]
    x, _ = held_out.windows(3)
    g = np.asarray(model.network_(x[:5].astype("float32")))
    np.testing.assert_allclose(x[:5, -1, :2] + held_out.dt * g, np.asarray(
        _value_of(model, x[:5])), rtol=0, atol=1e-5)  # float32: values O(1), a few ulp of 1e-7 times 1/Δt
    loaded = load_model(model.save(tmp_path / "value.keras"))
    np.testing.assert_array_equal(loaded.rollout(held_out).observed, model.rollout(held_out).observed)


def _value_of(model, x):
    """The network's next-value output (before it is turned into an increment)."""
    import keras

    inner = keras.Model(model.network_.inputs[0], model.network_.get_layer("value").output)
    return inner(x.astype("float32"))


def test_esn_readout_matches_a_direct_least_squares_solve(small_train):
    model = build_model("esn", units=40, washout=20, ridge=0.0).fit(small_train)
    feats = model.features(small_train.inputs[:, :-1])[:, 20:].reshape(-1, 40 + 4)
    from physrnn.data import Scaler

    targets = Scaler.fit(small_train.targets).transform(small_train.targets)[:, 20:].reshape(-1, 2)
    design = np.concatenate([feats, np.ones((len(feats), 1))], axis=1)
    direct = design @ np.linalg.lstsq(design, targets, rcond=None)[0]
    kernel, bias = model.network_.get_layer("readout").get_weights()
    # The same least-squares problem: the fitted values agree to rounding (weights need not, if rank-deficient).
    np.testing.assert_allclose(feats @ kernel + bias, direct, rtol=0, atol=1e-9)


def test_ridge_readout_solves_the_regularised_normal_equations(rng):
    f, t = rng.standard_normal((200, 6)), rng.standard_normal((200, 2))
    kernel, bias = ridge_readout(f, t, ridge=0.5)
    fc, tc = f - f.mean(0), t - t.mean(0)
    np.testing.assert_allclose(kernel, np.linalg.solve(fc.T @ fc + 0.5 * np.eye(6), fc.T @ tc), atol=1e-12)
    np.testing.assert_allclose(bias, t.mean(0) - f.mean(0) @ kernel, atol=1e-12)


def test_esn_with_input_to_readout_is_near_exact(small_train, held_out):
    model = build_model("esn", units=50, washout=20).fit(small_train)
    # The readout sees the input, through which the affine map is exact; ridge 1e-8 on standardised
    # features perturbs it by ~1e-8 relative, so the rollout stays well inside 1e-6.
    assert _rmse_x(model.rollout(held_out), held_out) < 1e-6


def test_small_gru_beats_euler_on_a_held_out_start(tiny_gru, small_train, held_out):
    gru = _rmse_x(tiny_gru.rollout(held_out), held_out)
    euler = _rmse_x(build_model("euler").fit(small_train).rollout(held_out), held_out)
    # Measured 0.044 against Euler's 0.127 with this seed; demand a clear factor, not a tie.
    assert gru < euler / 2, (gru, euler)


def test_same_seed_same_weights(tiny_gru, small_train, small_val):
    again = build_model("gru", **TINY_GRU).fit(small_train, small_val, verbose=0)
    for a, b in zip(tiny_gru.network_.get_weights(), again.network_.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = build_model("gru", **{**TINY_GRU, "seed": 1}).fit(small_train, small_val, verbose=0)
    first = [np.asarray(w) for w in tiny_gru.network_.trainable_weights]
    assert not any(np.array_equal(a, np.asarray(b)) for a, b in zip(first, other.network_.trainable_weights))


def test_scaling_is_fitted_on_training_data_only(tiny_gru, small_train, small_val):
    mean, _ = tiny_gru.network_.get_layer("input_scaling").get_weights()
    np.testing.assert_allclose(mean, small_train.inputs[:, :-1].reshape(-1, 4).mean(0), rtol=1e-6)
    everything = np.concatenate([small_train.inputs, small_val.inputs])[:, :-1].reshape(-1, 4).mean(0)
    assert not np.allclose(mean, everything, rtol=1e-6)


@pytest.mark.parametrize("kind", ["gru", "esn", "linear", "euler"])
def test_save_load_identical_rollout(tmp_path, kind, tiny_gru, small_train, held_out):
    model = tiny_gru if kind == "gru" else build_model(kind, **({"units": 30, "washout": 10} if kind == "esn"
                                                                else {})).fit(small_train)
    before = model.rollout(held_out)
    loaded = load_model(model.save(tmp_path / f"{kind}.keras"))
    after = loaded.rollout(held_out)
    np.testing.assert_array_equal(after.observed, before.observed)
    assert loaded.kind == model.kind and loaded.spec_ == model.spec_ and loaded.dt_ == model.dt_


def test_multi_step_loss_trains(small_train, small_val):
    model = build_model("simplernn", units=8, window=2, epochs=3, rollout_steps=5).fit(small_train, small_val,
                                                                                      verbose=0)
    assert len(model.history_["loss"]) == 3 and np.isfinite(model.history_["val_loss"]).all()


def test_killed_training_resumes_from_its_checkpoint(tmp_path, small_train, small_val):
    import keras

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    settings = dict(units=4, window=2, epochs=6, patience=10)
    with pytest.raises(KeyboardInterrupt):
        build_model("lstm", **settings).fit(small_train, small_val, verbose=0, checkpoint_dir=tmp_path / "ck",
                                            callbacks=[Kill()])
    resumed = build_model("lstm", **settings).fit(small_train, small_val, verbose=0, checkpoint_dir=tmp_path / "ck")
    # The backup of epoch 2 is written before the kill at its end; the rerun does only epochs 3-5.
    assert len(resumed.history_["loss"]) == 3


def test_a_checkpoint_directory_of_another_training_is_refused(tmp_path, small_train, small_val):
    # The audit: a directory left by a run with other settings gave a cryptic Keras error about variables.
    import keras

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_model("gru", units=4, window=2, epochs=3).fit(small_train, small_val, verbose=0,
                                                            checkpoint_dir=tmp_path / "ck", callbacks=[Kill()])
    with pytest.raises(ValueError, match=r"checkpoint directory '.*ck' holds a gru training with other settings or "
                                         r"data; give an empty or new directory"):
        build_model("gru", units=6, window=2, epochs=3).fit(small_train, small_val, verbose=0,
                                                            checkpoint_dir=tmp_path / "ck")
    # The same settings on other training data (the validation trajectories) are another training too.
    with pytest.raises(ValueError, match=r"holds a gru training with other settings or data"):
        build_model("gru", units=4, window=2, epochs=3).fit(small_val, small_train, verbose=0,
                                                            checkpoint_dir=tmp_path / "ck")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my files")
    with pytest.raises(ValueError, match=r"holds files physrnn did not write"):
        build_model("gru", units=4, window=2, epochs=1).fit(small_train, small_val, verbose=0,
                                                            checkpoint_dir=tmp_path / "mine")
    # The same training resumes; once complete, Keras removes the directory with its stamp.
    build_model("gru", units=4, window=2, epochs=3).fit(small_train, small_val, verbose=0,
                                                        checkpoint_dir=tmp_path / "ck")
    assert not (tmp_path / "ck").exists()


def test_a_model_with_non_finite_weights_is_not_saved(tmp_path, small_train):
    model = build_model("linear").fit(small_train)
    weights = model.network_.get_weights()
    weights[0][0, 0] = np.nan  # what a diverged training leaves
    model.network_.set_weights(weights)
    with pytest.raises(ValueError, match=r"refusing to save .*m\.keras: the linear model's weights hold NaN or inf"
                                         r".*diverged\); train again with a lower learning_rate or a clipnorm$"):
        model.save(tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []
    # and its step map is read only on data of its own features
    import physrnn as pr

    other = pr.StepData.from_arrays(small_train.observed, dt=small_train.dt)
    with pytest.raises(ValueError, match=r"^step_jacobian needs StepData built with the model's feature spec$"):
        model.step_jacobian(other, [2])


def test_divergence_is_flagged_not_raised(small_train, held_out):
    model = build_model("linear").fit(small_train)
    flagged = model.rollout(held_out, bound=0.5)  # the true x reaches ~0.7 at once
    assert flagged.diverged.all() and flagged.diverged_at[0] >= 1, flagged.diverged_at
    assert np.isnan(flagged.observed[0, flagged.diverged_at[0]:]).all()
    assert np.isfinite(flagged.observed[0, :flagged.diverged_at[0]]).all()
    kernel, bias = model.network_.get_layer("flow_map").get_weights()
    model.network_.get_layer("flow_map").set_weights([kernel * 1e200, bias])  # overflows to inf within steps
    blown = model.rollout(held_out)
    assert blown.diverged.all() and np.isnan(blown.observed[0, -1]).all()


@pytest.mark.parametrize("kind,settings,match", [
    ("transformer", {}, r"unknown model type 'transformer'; choose one of simplernn, gru"),
    ("gru", {"units": 0}, r"units must be an integer >= 1, got 0"),
    ("lstm", {"units": -3}, r"units must be an integer >= 1, got -3"),
    ("esn", {"spectral_radius": 0.0}, r"spectral_radius must be a finite number > 0, got 0\.0"),
    ("esn", {"leak_rate": 1.5}, r"leak_rate must be in \(0, 1\], got 1\.5"),
    ("gru", {"precision": "float16"}, r"unknown precision 'float16'"),
    ("gru", {"colour": "red"}, r"unknown setting for a gru model: colour"),
    ("euler", {"units": 3}, r"unknown setting for a euler model: units; allowed: none"),
    ("linear", {"colour": 1, "flavour": 2}, r"^unknown settings for a linear model: colour, flavour; allowed: window, "
                                            r"ridge$"),
    ("linear", {"window": 0}, r"^window must be an integer >= 1, got 0$"),
    ("linear", {"ridge": -1e-3}, r"^ridge must be a finite number >= 0, got -0\.001$"),
])
def test_bad_model_settings(kind, settings, match):
    with pytest.raises(ValueError, match=match):
        build_model(kind, **settings)


def test_an_unfitted_model_has_an_empty_history_to_read():
    for kind in ("gru", "esn", "linear", "euler"):
        assert build_model(kind).history_ == {}


def test_a_rollout_needs_at_least_one_closed_loop_step(small_train):
    model = build_model("linear").fit(small_train)
    n = small_train.observed.shape[1]
    with pytest.raises(ValueError, match=rf"^need 1 <= context \({n}\) < n_steps \({n}\) <= the data's {n} steps$"):
        model.rollout(small_train, context=n, n_steps=n)
    assert model.rollout(small_train, context=n - 1, n_steps=n).observed.shape[1] == n


def test_window_longer_than_trajectories(small_train):
    with pytest.raises(ValueError, match=r"window = 300 .* does not fit trajectories of 201 steps"):
        build_model("gru", window=300).fit(small_train, verbose=0)


def test_rollout_checks_its_data(small_train, held_out):
    from dataclasses import replace

    model = build_model("linear").fit(small_train)
    other_features = replace(held_out, spec=FeatureSpec(system="oscillator", drive="force"))
    with pytest.raises(ValueError, match=r"the data's features .* differ from the model's"):
        model.rollout(other_features)
    with pytest.raises(ValueError, match=r"the data's dt = 0\.1 differs from the model's dt = 0\.05"):
        model.rollout(replace(held_out, dt=0.1))
    with pytest.raises(ValueError, match=r"need 1 <= context \(0\)"):
        model.rollout(held_out, context=0)


def test_lbfgs_refinement_lowers_the_validation_loss(small_train, small_val):
    import keras

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs or {}))

    model = build_model("gru", units=8, window=2, epochs=3, refine="lbfgs", refine_steps=40).fit(
        small_train, small_val, verbose=0, callbacks=[Record()])
    # the user's callback hears Adam's 3 epochs, then every L-BFGS iteration with its loss
    assert len(seen) == 3 + model.history_["refine_iterations"][0] and all("loss" in s for s in seen[3:])
    before, after = model.history_["refine_val_loss"]
    # Three Adam epochs leave the loss far from its floor; 40 quasi-Newton steps must cut it clearly.
    assert after < 0.5 * before, (before, after)
    assert model.history_["refine_iterations"][0] > 1


def test_the_eigen_flow_goes_through_the_same_path():
    from simulators import solve

    spec = FeatureSpec(system="eigen")
    cfg = {"system": "eigen", "dt": 0.05, "params": {"size": 3, "shared_matrix": True}}
    train = _data(spec, n_traj=8, n_steps=101, **cfg)
    test = _data(spec, n_traj=2, n_steps=101, **{**cfg, "seed": 4})
    assert train.observed.shape == (8, 101, 3) and train.known.shape == (8, 101, 0)
    euler = build_model("euler").fit(train).rollout(test)
    np.testing.assert_allclose(euler.observed, solve(test.system, test.observed[:, 0], test.time, method="euler"),
                               rtol=0, atol=1e-13)
    model = build_model("esn", units=60, washout=10).fit(train)
    # The one-step (teacher-forced) map of this cubic flow is learned closely on the training states...
    assert model.history_["train_mse_scaled"][0] < 1e-6
    rollout = model.rollout(test)
    # ...and the closed loop runs on the same path. (How well it generalises from 8 starts of one matrix is
    # the eigen study's question: here, not well — one-step fit says little about the closed loop.)
    assert rollout.observed.shape == test.observed.shape and np.isfinite(rollout.observed).all()


def test_load_rejects_foreign_and_unknown_model_files(tmp_path, small_train):
    import json
    import zipfile

    with pytest.raises(ValueError, match=r"no such model file"):
        load_model(tmp_path / "missing.keras")
    path = build_model("euler").fit(small_train).save(tmp_path / "e.keras")
    meta = json.loads(zipfile.ZipFile(path).read("physrnn.json"))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("physrnn.json", json.dumps({**meta, "kind": "kan"}))
    with pytest.raises(ValueError, match=r"holds a model of unknown type 'kan'"):
        load_model(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("physrnn.json", json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match=r"has model format physrnn.model v99"):
        load_model(path)


def test_the_plateau_schedule_halves_the_rate_after_half_the_patience(monkeypatch, small_train, small_val):
    # schedule = "plateau" at a patience of 7: the rate is halved after 3 epochs without a better validation
    # loss, down to a thousandth of the initial 3e-3 (the wiring, at non-default values).
    import keras

    seen = {}
    real = keras.callbacks.ReduceLROnPlateau

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(keras.callbacks, "ReduceLROnPlateau", spy)
    build_model("gru", units=4, window=2, epochs=1, schedule="plateau", patience=7,
                learning_rate=3e-3).fit(small_train, small_val, verbose=0)
    assert seen == {"monitor": "val_loss", "factor": 0.5, "patience": 3, "min_lr": pytest.approx(3e-6)}


def test_fit_passes_its_verbosity_on(small_train, small_val, capsys):
    # verbose = 2 reaches Keras's fit: one line per Adam epoch (every other test fits with verbose = 0, quietly).
    build_model("gru", units=4, window=2, epochs=2).fit(small_train, small_val, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out


def test_a_rollout_records_its_own_duration_and_integer_divergence_steps(small_train, held_out):
    rollout = build_model("linear").fit(small_train).rollout(held_out)
    assert 0 < rollout.seconds < 60 and rollout.diverged_at.dtype == np.int64


def test_step_jacobian_takes_whole_number_steps_and_names_its_range(small_train):
    model = build_model("linear", window=2).fit(small_train)
    n = small_train.observed.shape[1]
    np.testing.assert_array_equal(model.step_jacobian(small_train, [3.0]), model.step_jacobian(small_train, [3]))
    with pytest.raises(ValueError, match=rf"^steps must lie in \[1, {n - 2}\] \(a full window behind and a step "
                                         rf"ahead\), got 0 to 0$"):
        model.step_jacobian(small_train, [0])


def test_a_diverging_physics_baseline_stays_nan_after_its_divergence_and_warns_nothing():
    import physrnn as pr

    # Euler on a stiff-ish undamped oscillator at a coarse step grows by √(1 + ω²Δt²) a step: past the bound.
    data = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=2, dt=0.5, t_end=400.0, seed=1,
                                                     natural_frequency=3.0))
    rollout = build_model("euler").fit(data).rollout(data, bound=1e3)
    assert rollout.diverged.all()
    for i, at in enumerate(rollout.diverged_at):
        assert np.isnan(rollout.observed[i, at:]).all() and np.isfinite(rollout.observed[i, :at]).all()
    # With no bound the state overflows (1.8^1200 > 1e308): flagged at the first non-finite step, silently.
    longer = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=1, dt=0.5, t_end=1000.0, seed=1,
                                                       natural_frequency=3.0))
    unbounded = build_model("euler").fit(longer).rollout(longer, bound=np.inf)
    assert unbounded.diverged[0] and 1000 < unbounded.diverged_at[0] < 2000


def test_an_esn_may_have_no_bias_and_sindy_names_its_bad_select_steps():
    assert build_model("esn", bias=0.0).config.bias == 0.0
    with pytest.raises(ValueError, match=r"^select_steps must be an integer >= 0, got -1$"):
        build_model("sindy", select_steps=-1)


def test_a_recurrent_models_callbacks_see_every_epoch_and_its_loss(small_train, small_val):
    import keras

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))

    model = build_model("gru", units=4, window=2, epochs=2, rollout_steps=2).fit(small_train, small_val, verbose=0,
                                                                                callbacks=[Record()])
    assert len(seen) == 2 and "loss" in seen[0] and "val_loss" in seen[0]
    assert len(model.history_["loss"]) == 2


def test_fit_names_the_argument_that_is_not_step_data(small_train):
    with pytest.raises(TypeError, match=r"^validation must be a StepData, got str"):
        build_model("linear").fit(small_train, "val.h5")
    with pytest.raises(TypeError, match=r"^train must be a StepData, got ndarray"):
        build_model("linear").fit(small_train.observed)


def test_a_model_says_whether_it_reads_validation_data():
    # A study of trials holds back the end of a trial's stretch only from a model that reads it: the networks
    # (early stopping, the second-order trainer's stall), an NVAR or SINDy choosing its regularisation on it.
    assert pr.GRU().uses_validation() and pr.SimpleRNN().uses_validation()
    assert pr.NVAR(ridge=-1.0).uses_validation() and not pr.NVAR(ridge=2.5e-6).uses_validation()
    assert pr.SINDy(threshold=-1.0).uses_validation() and not pr.SINDy(threshold=1e-3).uses_validation()
    assert not pr.ESN().uses_validation() and not pr.LinearMap().uses_validation()
    assert not pr.RK4().uses_validation()


def test_angles_given_as_a_list_are_kept_as_a_tuple():
    # A TOML list becomes a tuple: the config stays hashable, equal to the same config written with a tuple,
    # and its cache key the same.
    config = pr.build_model("gru", angles=["theta"]).config
    assert config.angles == ("theta",) and isinstance(config.angles, tuple)
    assert config == pr.build_model("gru", angles=("theta",)).config
