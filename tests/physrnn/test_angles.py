"""Angle inputs: a recurrent model told that θ is an angle sees (cos θ, sin θ), so its step is 2π-periodic in θ
as the pendulum's is, saves and reloads bit for bit, and names an unknown component in one line."""

import numpy as np
import pytest

import physrnn as pr


@pytest.fixture(scope="module")
def pendulum():
    return pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=6, dt=0.1, t_end=10.0, seed=1,
                                                     natural_frequency=1.0))


def _increments(model, x):
    return np.asarray(model.network_(x, training=False))


def test_the_step_of_a_model_with_angle_inputs_is_periodic_in_the_angle(pendulum, tmp_path):
    x, _ = pendulum.windows(2)
    shifted = x.copy()
    shifted[..., 0] += 2 * np.pi  # every θ in the window one turn on
    periodic = pr.GRU(units=6, window=2, epochs=1, precision="float64", angles=["theta"]).fit(pendulum, verbose=0)
    # cos and sin of θ + 2π differ from those of θ by rounding of the argument (|θ| ≲ 10: ~1e-15)
    np.testing.assert_allclose(_increments(periodic, shifted[:64]), _increments(periodic, x[:64]), atol=1e-12)
    plain = pr.GRU(units=6, window=2, epochs=1, precision="float64").fit(pendulum, verbose=0)
    assert np.abs(_increments(plain, shifted[:64]) - _increments(plain, x[:64])).max() > 1e-3  # sees raw θ
    path = periodic.save(tmp_path / "angles.keras")
    again = pr.load_model(path)
    np.testing.assert_array_equal(again.rollout(pendulum).observed, periodic.rollout(pendulum).observed)
    assert again.config.angles == ("theta",)


def test_angles_must_name_observed_components(pendulum):
    with pytest.raises(ValueError, match="angles phi are not observed components; choose from theta, omega"):
        pr.GRU(units=4, window=2, epochs=1, angles=["phi"]).fit(pendulum, verbose=0)
    with pytest.raises(ValueError, match=r"angles must be a list of component names such as \[\"theta\"\]"):
        pr.GRU(angles="theta")
