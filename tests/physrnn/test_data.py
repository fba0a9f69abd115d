"""From trajectories to the learning problem: features, targets, windows, splits, scaling."""

import numpy as np
import pytest

from physrnn.data import FeatureSpec, Scaler, StepData, build_step_data, split_by_parameter, split_by_trajectory
from simulators import EnsembleConfig, generate


@pytest.fixture(scope="module")
def driven():
    return generate(EnsembleConfig.from_dict({
        "system": "oscillator", "n_traj": 4, "dt": 0.1, "t_end": 3.0, "seed": 5,
        "params": {"damping": {"uniform": [0.1, 0.3]}, "drive_amplitude": 0.5,
                   "drive_frequency": {"uniform": [1.0, 2.0]}, "drive_phase": 0.3}}))


def test_features_and_targets(driven):
    data = build_step_data(driven, FeatureSpec(system="oscillator", parameters=("damping", "drive_frequency")))
    assert data.observed.shape == (4, 31, 2) and data.known.shape == (4, 31, 4)
    phase = driven.params["drive_frequency"] * driven.time[None, :] + 0.3
    np.testing.assert_allclose(data.known[..., 0], np.cos(phase), atol=1e-15)
    np.testing.assert_allclose(data.known[..., 1], np.sin(phase), atol=1e-15)
    np.testing.assert_array_equal(data.known[..., 2], np.broadcast_to(driven.params["damping"][:, None], (4, 31)))
    np.testing.assert_array_equal(data.targets, np.diff(driven.states, axis=1) / data.dt)


def test_position_only_and_force_features(driven):
    data = build_step_data(driven, FeatureSpec(system="oscillator", observation="position", drive="force"))
    assert data.observed.shape == (4, 31, 1) and data.state_names == ("x",)
    np.testing.assert_array_equal(data.known[..., 0], driven.drive[..., 0])


@pytest.mark.parametrize("window,horizon", [(1, 1), (3, 1), (2, 4)])
def test_windows_align_inputs_with_the_next_increment(driven, window, horizon):
    data = build_step_data(driven, FeatureSpec(system="oscillator"))
    x, y = data.windows(window, horizon)
    per_traj = 30 - (window + horizon - 1) + 1
    assert x.shape == (4 * per_traj, window + horizon - 1, 4) and y.shape == (4 * per_traj, horizon, 2)
    traj, j = 2, 5  # the j-th window of trajectory 2 ends (its first window) at step i = j + window - 1
    row, i = traj * per_traj + j, j + window - 1
    np.testing.assert_array_equal(x[row, window - 1, :2], data.observed[traj, i])
    # The target is the increment *after* the last input: o_{i+1} never enters the first window.
    np.testing.assert_array_equal(y[row, 0], (data.observed[traj, i + 1] - data.observed[traj, i]) / data.dt)
    np.testing.assert_array_equal(y[row, -1], data.targets[traj, i + horizon - 1])


def test_window_longer_than_trajectory(driven):
    data = build_step_data(driven, FeatureSpec(system="oscillator"))
    with pytest.raises(ValueError, match=r"window = 31 .* does not fit trajectories of 31 steps"):
        data.windows(31)


def test_split_by_trajectory():
    parts = split_by_trajectory(20, (0.7, 0.15, 0.15), seed=3)
    assert [len(p) for p in parts] == [14, 3, 3]
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(20))  # every trajectory, none in two splits
    again = split_by_trajectory(20, (0.7, 0.15, 0.15), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = split_by_trajectory(20, (0.7, 0.15, 0.15), seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


@pytest.mark.parametrize("n,fractions,match", [
    (20, (0.5, 0.6), r"must be non-negative and sum to 1"),
    (2, (0.7, 0.15, 0.15), r"cannot split 2 trajectories into 3 non-empty parts"),
])
def test_bad_splits(n, fractions, match):
    with pytest.raises(ValueError, match=match):
        split_by_trajectory(n, fractions)


def test_split_by_parameter():
    values = np.array([0.1, 0.5, 0.9, 1.3, 1.7])
    train, test = split_by_parameter(values, [(0.4, 0.6), (1.5, 2.0)])
    assert train.tolist() == [0, 2, 3] and test.tolist() == [1, 4]


def test_scaler_round_trip_and_constant_features():
    data = np.array([[1.0, 5.0], [3.0, 5.0]])
    s = Scaler.fit(data)
    np.testing.assert_array_equal(s.scale, [1.0, 1.0])  # std of [1, 3] is 1; a constant column keeps scale 1
    np.testing.assert_allclose(s.inverse(s.transform(data)), data, atol=1e-15)


@pytest.mark.parametrize("kwargs,match", [
    (dict(system="pendulm"), r"unknown system 'pendulm'"),
    (dict(system="oscillator", observation="velocity"), r"unknown observation 'velocity'"),
    (dict(system="eigen", observation="position"),
     r"unknown observation 'position' for the eigen system; choose one of full"),
    (dict(system="oscillator", parameters=("mass",)), r"unknown parameter feature\(s\) mass; choose from damping, "
                                                      r"natural_frequency, drive_amplitude, drive_frequency$"),
])
def test_bad_feature_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureSpec(**kwargs)


def test_data_of_the_wrong_system(driven):
    with pytest.raises(ValueError, match=r"data are of the oscillator system but the model is for the eigen system"):
        build_step_data(driven, FeatureSpec(system="eigen"))


def test_from_trajectories_passes_every_setting_on(driven):
    # Each keyword at a value other than its default changes what the model is given: position only, the force
    # instead of the phase, two parameters after it (the force first, then damping and drive frequency).
    from physrnn import StepData

    default = StepData.from_trajectories(driven)
    assert default.spec.drive == "phase" and default.n_known == 2 and default.n_obs == 2
    data = StepData.from_trajectories(driven, observation="position", drive="force",
                                      parameters=("damping", "drive_frequency"))
    assert (data.spec.observation, data.spec.drive, data.spec.parameters) == ("position", "force",
                                                                              ("damping", "drive_frequency"))
    assert data.n_obs == 1 and data.n_known == 3
    np.testing.assert_array_equal(data.known[..., 0], driven.drive[..., 0])
    np.testing.assert_array_equal(data.known[..., 1], np.broadcast_to(driven.params["damping"][:, None], (4, 31)))
    np.testing.assert_array_equal(data.known[..., 2],
                                  np.broadcast_to(driven.params["drive_frequency"][:, :1], (4, 31)))


def test_steps_cut_every_series_in_time_and_keep_the_rest(driven):
    # A trials study splits a trajectory in time: the cut keeps the names, spec, system and trajectories.
    data = StepData.from_trajectories(driven)
    part = data.steps(3, 9)
    np.testing.assert_array_equal(part.observed, data.observed[:, 3:9])
    np.testing.assert_array_equal(part.known, data.known[:, 3:9])
    np.testing.assert_array_equal(part.states, data.states[:, 3:9])
    np.testing.assert_array_equal(part.time, data.time[3:9])
    assert part.state_names == data.state_names == ("x", "v") and part.spec == data.spec
    assert part.system is data.system and part.dt == data.dt
    np.testing.assert_array_equal(part.trajectories, data.trajectories)
    assert data.steps(5).time.size == data.time.size - 5
