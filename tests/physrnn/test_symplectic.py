"""The symplectic step map: JᵀΩJ = Ω for any weights, states and inputs; periodic in its angles; the exact flow
map of the harmonic oscillator, free or driven, within its reach; a system without positions and momenta
refused in one line, at fit time and when a study is read."""

import re
import tomllib

import keras
import numpy as np
import pytest
import tensorflow as tf

import physrnn as pr
from physrnn.models.symplectic import SymplecticMap
from physrnn.study import StudyConfigError, study_from_dict

from .helpers import TINY_STUDY


def _random_map(n_obs, n_known, positions, momenta, angles, units=5, layers=2, seed=3, rotation=False):
    """A map with every weight drawn at O(1) (amplitudes, quadratics, couplings too): far from the identity."""
    rng = np.random.default_rng(seed)
    layer = SymplecticMap(n_obs, n_known, positions, momenta, angles, units, layers, 0.1, rotation,
                          dtype="float64")
    for w in layer.trainable_weights:
        w.assign(rng.normal(size=w.shape))
    n = len(positions)
    q, p, u, radius, speed = (pr.data.Scaler(rng.normal(size=k), rng.uniform(0.5, 2.0, size=k))
                              for k in (n, n, n_known, 1, 1))
    layer.set_statistics(q, p, u, kick_scale=0.3, drift_scale=0.7, radius=radius, speed=speed)
    return layer


def _flow_jacobian(layer, states, known):
    x = tf.constant(states)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer.flow(x, tf.constant(known))
    return tape.batch_jacobian(out, x).numpy()


def _omega(n_obs, positions, momenta):
    omega = np.zeros((n_obs, n_obs))
    for q, p in zip(positions, momenta):
        omega[q, p], omega[p, q] = 1.0, -1.0
    return omega


@pytest.mark.parametrize("n_obs, n_known, positions, momenta, angles, rotation", [
    (4, 2, (0, 1), (2, 3), (), False),  # Kepler's order with a drive's two features
    (4, 0, (3, 0), (1, 2), (), False),  # positions and momenta interleaved and out of order, no known inputs
    (2, 3, (1,), (0,), (1,), False),  # the momentum first, the position an angle, three known inputs
    (6, 1, (0, 1, 2), (3, 4, 5), (1,), False),  # three degrees of freedom, one an angle
    (4, 1, (0, 1), (2, 3), (), True),  # central potentials of |q| and |p|
])
def test_the_map_is_symplectic_for_any_weights_states_and_inputs(n_obs, n_known, positions, momenta, angles,
                                                                  rotation):
    layer = _random_map(n_obs, n_known, positions, momenta, angles, rotation=rotation)
    rng = np.random.default_rng(7)
    states, known = rng.normal(scale=2.0, size=(16, n_obs)), rng.normal(size=(16, n_known))
    jac = _flow_jacobian(layer, states, known)
    omega = _omega(n_obs, positions, momenta)
    assert np.abs(jac - np.eye(n_obs)).max() > 1.0  # far from the identity
    assert np.abs(jac[0] - jac[1]).max() > 0.1  # and not linear: the Jacobian changes from state to state
    np.testing.assert_allclose(np.einsum("bji,jk,bkl->bil", jac, omega, jac), np.broadcast_to(omega, jac.shape),
                               atol=1e-12)


def test_central_potentials_turn_with_the_orbit_and_keep_its_angular_momentum():
    layer = _random_map(4, 1, (0, 1), (2, 3), (), rotation=True)
    rng = np.random.default_rng(5)
    states, known = rng.normal(scale=1.5, size=(16, 4)), rng.normal(size=(16, 1))
    step = np.asarray(layer.flow(tf.constant(states), tf.constant(known)))
    assert np.abs(step - states).max() > 1.0
    momentum = lambda s: s[:, 0] * s[:, 3] - s[:, 1] * s[:, 2]  # noqa: E731
    np.testing.assert_allclose(momentum(step), momentum(states), rtol=0, atol=1e-12)
    c, s_ = np.cos(2.2), np.sin(2.2)
    rot = np.kron(np.eye(2), [[c, -s_], [s_, c]])  # x, y and vx, vy turned alike
    turned = np.asarray(layer.flow(tf.constant(states @ rot.T), tf.constant(known)))
    np.testing.assert_allclose(turned, step @ rot.T, atol=1e-12)
    still = np.zeros((1, 4))  # at rest at the centre: no direction to push along, and no NaN
    np.testing.assert_array_equal(np.asarray(layer.flow(tf.constant(still), tf.constant(known[:1]))), still)


def test_the_map_is_periodic_in_its_angles_and_unwraps_them():
    layer = _random_map(2, 1, (0,), (1,), (0,))
    rng = np.random.default_rng(2)
    states, known = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    turned = states + [2 * np.pi, 0.0]
    step = np.asarray(layer.flow(tf.constant(states), tf.constant(known)))
    step_turned = np.asarray(layer.flow(tf.constant(turned), tf.constant(known)))
    np.testing.assert_allclose(step_turned, step + [2 * np.pi, 0.0], atol=1e-12)
    # The increment g is the map's: o + Δt g = Φ(o, u) to rounding.
    g = np.asarray(layer(tf.constant(np.concatenate([states, known], axis=-1)[:, None])))
    np.testing.assert_allclose(states + 0.1 * g, step, rtol=0, atol=1e-14)


def test_the_harmonic_oscillators_flow_map_is_fitted_to_rounding():
    # ω0 = 1.3, Δt = 0.1: the exact map rotates phase space by 0.13 rad a step and adds the drive's affine term
    # (a force F(t) = −∂H/∂q of H's −q F(t)), which quadratic potentials (units = 0) and their coupling to the
    # drive's features hold exactly, in three shears.
    data = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=8, dt=0.1, t_end=8.0, seed=4,
                                                     natural_frequency=1.3, drive_amplitude=0.6, drive_frequency=0.7),
                                         drive="phase")
    train, val = data.take(np.arange(6)), data.take(np.arange(6, 8))
    model = pr.build_model("sympnet", units=0, layers=1, epochs=2, batch_size=64, refine_steps=40).fit(
        train, val, verbose=0)
    x, y = val.windows(1)
    g = np.asarray(model.network_(x, training=False))
    assert np.abs(g - y[:, 0]).max() * 0.1 < 1e-12  # one step of the map against the exact one, |o| ≈ 1
    rollout = model.rollout(val)
    assert np.abs(rollout.observed - val.observed).max() < 1e-12


@pytest.mark.parametrize("system, settings", [("pendulum", {"angles": ["theta"]}),
                                              pytest.param("kepler", {"rotation": True}, marks=pytest.mark.slow)])
def test_a_fitted_map_saves_and_reloads_bit_for_bit(tmp_path, system, settings):
    data = pr.StepData.from_trajectories(pr.simulate(system=system, n_traj=4, dt=0.1, t_end=6.0, seed=2))
    model = pr.build_model("sympnet", units=4, layers=1, epochs=1, **settings).fit(data, verbose=0)
    again = pr.load_model(model.save(tmp_path / "sympnet.keras"))
    roll = model.rollout(data)
    np.testing.assert_array_equal(again.rollout(data).observed, roll.observed)
    np.testing.assert_array_equal(again.step_jacobian(data, [3, 9]), model.step_jacobian(data, [3, 9]))
    # The step Jacobian is symplectic (det J = 1 at least), and Kepler's central map keeps q × p to rounding.
    assert np.linalg.det(model.step_jacobian(data, [3, 9])[..., 0, :, :]) == pytest.approx(1.0, abs=1e-12)
    if system == "kepler":
        h = data.system.angular_momentum(roll.observed)
        np.testing.assert_allclose(h, h[:, :1] + 0 * h, rtol=1e-13)


def _data(system, observation="full", **params):
    return pr.StepData.from_trajectories(pr.simulate(system=system, n_traj=2, dt=0.1, t_end=2.0, seed=1, **params),
                                         observation=observation)


@pytest.mark.parametrize("system, params, settings, message", [
    ("oscillator", {"damping": 0.3}, {}, "a sympnet model needs Hamiltonian motion, and the oscillator system has "
                                         "damped trajectories (damping > 0), whose flow is not symplectic; choose "
                                         "another model kind"),
    ("lotka-volterra", {"method": "reference"}, {}, "a sympnet model needs Hamiltonian motion, and the lotka-volterra system declares no "
                               "positions and momenta (its motion is not Hamiltonian); choose another model kind"),
    ("pendulum", {}, {"angles": ["omega"]}, "angles omega are not positions (theta); only a position can be an angle"),
    ("kepler", {}, {"positions": ["x", "y"], "momenta": ["vy", "vy"]},
     "a sympnet model steps positions ['x', 'y'] and momenta ['vy', 'vy'], each observed once, but the data "
     "observe x, y, vx, vy; observe the full state"),
])
def test_a_system_without_positions_and_momenta_is_refused_in_one_line(system, params, settings, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pr.build_model("sympnet", units=2, epochs=1, **settings).fit(_data(system, **params), verbose=0)


def test_partial_observations_and_arrays_are_refused_and_arrays_may_name_their_split():
    with pytest.raises(ValueError, match=r"^a sympnet model steps positions \['x'\] and momenta \['v'\], each "
                                         r"observed once, but the data observe x; observe the full state$"):
        pr.build_model("sympnet", units=2, epochs=1).fit(_data("oscillator", observation="position"), verbose=0)
    states = _data("oscillator").observed
    arrays = pr.StepData.from_arrays(states, dt=0.1, state_names=["q", "p"])
    with pytest.raises(ValueError, match=r'^data given as arrays declare no positions and momenta; set positions '
                                         r'and momenta \(for example positions = \["q"\], momenta = \["p"\]\)$'):
        pr.build_model("sympnet", units=2, epochs=1).fit(arrays, verbose=0)
    model = pr.build_model("sympnet", units=2, epochs=1, positions=["q"], momenta=["p"]).fit(arrays, verbose=0)
    assert model.rollout(arrays).observed.shape == states.shape


def test_rotation_needs_the_systems_declared_planar_vectors():
    with pytest.raises(ValueError, match=re.escape(
            "rotation = true turns the positions ['theta'] and the momenta ['omega'] as two planar vectors, which the "
            "pendulum system does not declare (its rotations: none); set rotation = false")):
        pr.build_model("sympnet", units=2, epochs=1, rotation=True).fit(_data("pendulum"), verbose=0)
    with pytest.raises(ValueError, match=re.escape("its rotations: [['x', 'y'], ['vx', 'vy']]")):
        pr.build_model("sympnet", units=2, epochs=1, rotation=True, positions=["x", "vx"], momenta=["y", "vy"]).fit(
            _data("kepler"), verbose=0)
    with pytest.raises(TypeError, match="^rotation must be true or false, got 1$"):
        pr.build_model("sympnet", rotation=1)


def test_settings_pair_positions_with_momenta():
    with pytest.raises(ValueError, match=r"^positions \['x', 'y'\] and momenta \['vx'\] pair up one to one; give as "
                                         r"many of each \(or neither, for the system's own\)$"):
        pr.build_model("sympnet", positions=["x", "y"], momenta=["vx"])
    with pytest.raises(ValueError, match="^units must be an integer >= 0, got -1$"):
        pr.build_model("sympnet", units=-1)


def test_a_study_refuses_a_symplectic_model_of_damped_motion_before_any_work():
    raw = {**tomllib.loads(TINY_STUDY), "models": {"sympnet": {"units": 2}}}
    with pytest.raises(StudyConfigError, match=r"\[models.sympnet\] a sympnet model needs Hamiltonian motion, and "
                                               r"the oscillator system has damped trajectories"):
        study_from_dict(raw)


@pytest.mark.slow  # about 25 s: three LM stages traced and three compiled loops (make test-slow; CI runs it)
def test_a_curriculum_of_horizons_keeps_the_stage_whose_validation_loops_err_least(monkeypatch):
    # The rule on its sequence: every stage is scored on the validation closed loops, the kept weights are the
    # best stage's, and a stage that makes things worse (here one planted to blow up) is not kept.
    import physrnn.models.recurrent as recurrent

    data = pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=6, dt=0.1, t_end=8.0, seed=3,
                                                     natural_frequency=1.2))
    train, val = data.take(np.arange(4)), data.take(np.arange(4, 6))
    real = recurrent.levenberg_marquardt
    calls = []

    def planted(trainer, train_set, val_set, **options):
        calls.append((trainer.horizon, train_set[0].shape, val_set[0].shape, options["callbacks"]))
        out = real(trainer, train_set, val_set, **options)
        if trainer.horizon == 6:  # the last stage ruins the map
            trainer.network.set_weights([w * 3.0 for w in trainer.network.get_weights()])
        return out

    monkeypatch.setattr(recurrent, "levenberg_marquardt", planted)
    model = pr.build_model("sympnet", units=2, layers=1, epochs=1, batch_size=32, refine_steps=6, horizons=[3, 6],
                           angles=["theta"]).fit(train, val, verbose=0, callbacks=[keras.callbacks.Callback()])
    h = model.history_
    assert all(len(c[3]) == 1 for c in calls)  # the user's callbacks see every stage
    # The first call is the one-step training; then one per horizon, on every horizon-th window.
    assert [c[0] for c in calls] == [1, 3, 6]
    assert calls[1][1] == (len(train.windows(1, 3)[0][::3]), 3, 4) and calls[2][1][1] == 6
    assert calls[2][2][0] == len(val.windows(1, 6)[0][::6])
    assert h["curriculum_horizons"] == [1, 3, 6] and len(h["curriculum_val_rmse"]) == 3
    assert h["curriculum_lm_iterations"][1:] == [c for c in h["curriculum_lm_iterations"][1:] if 0 < c <= 6]
    kept = h["curriculum_kept"][0]
    scores = list(zip(h["curriculum_val_diverged"], h["curriculum_val_rmse"]))
    assert kept == min(range(3), key=lambda i: (scores[i], i)) and kept != 2
    assert scores[2] > scores[kept]
    # The model holds the kept stage's weights: its closed loops score what the record says.
    roll = model.rollout(val)
    spread = np.std(train.observed.reshape(-1, 2), axis=0)
    err = (roll.observed[:, 1:] - val.observed[:, 1:]) / spread
    assert np.sqrt(np.mean(err**2, axis=(1, 2))).mean() == pytest.approx(h["curriculum_val_rmse"][kept], rel=1e-12)


def test_a_curriculum_needs_validation_data():
    data = _data("pendulum")
    with pytest.raises(ValueError, match="^the sympnet model's horizons are chosen on the closed loops of validation "
                                         "trajectories: pass validation data to fit"):
        pr.build_model("sympnet", units=2, epochs=1, refine_steps=2, horizons=[2]).fit(data, verbose=0)
