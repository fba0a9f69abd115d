"""A recurrent model told to keep a system's rotational symmetry (Kepler's) sees each window in the frame that turns
with its latest position and turns its increment back: its step map commutes with rotations exactly, whatever
its weights; a system that declares no rotations is refused in one line."""

import numpy as np
import pytest

import physrnn as pr
from physrnn.models.layers import plane_frame


@pytest.fixture(scope="module")
def kepler():
    return pr.StepData.from_trajectories(pr.simulate(system="kepler", n_traj=4, dt=0.05, t_end=4.0, seed=5,
                                                     eccentricity={"uniform": [0.1, 0.6]}))


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.kron(np.eye(2), [[c, -s], [s, c]])  # (x, y) and (vx, vy) alike


def test_plane_frame_puts_the_latest_position_on_the_x_axis_and_turns_back():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4))
    turned = plane_frame(x, ((0, 1), (2, 3)))
    np.testing.assert_allclose(turned[:, 0], np.hypot(x[:, 0], x[:, 1]), rtol=1e-14)
    np.testing.assert_allclose(turned[:, 1], 0.0, atol=1e-15)
    # The velocity becomes (radial, tangential): v·r/r and (x vy − y vx)/r.
    r = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(turned[:, 2], (x[:, 0] * x[:, 2] + x[:, 1] * x[:, 3]) / r, rtol=1e-13)
    np.testing.assert_allclose(turned[:, 3], (x[:, 0] * x[:, 3] - x[:, 1] * x[:, 2]) / r, rtol=1e-13)
    back = plane_frame(turned, ((0, 1), (2, 3)), angle_from=x, invert=True)
    np.testing.assert_allclose(back, x, atol=1e-14)


@pytest.mark.parametrize("target", ["increment", "value"])
def test_a_rotation_aware_networks_step_commutes_with_rotations(kepler, target, tmp_path):
    model = pr.GRU(units=6, window=3, epochs=1, precision="float64", rotation=True, target=target).fit(
        kepler, verbose=0)
    x, _ = kepler.windows(3)
    x = x[:50]
    rot = _rotation(1.1)
    g = np.asarray(model.network_(x, training=False))
    g_turned = np.asarray(model.network_(x @ rot.T, training=False))
    np.testing.assert_allclose(g_turned, g @ rot.T, rtol=0, atol=1e-11 * np.abs(g).max())
    # Its input scaling is fitted in the co-rotating frame, over every training step.
    frame = plane_frame(kepler.inputs[:, :-1], ((0, 1), (2, 3))).reshape(-1, 4)
    np.testing.assert_allclose(model.network_.get_layer("input_scaling").mean.numpy(), frame.mean(axis=0),
                               rtol=1e-12, atol=1e-14)
    if target == "increment":  # the check can fail: a network without the frame does not commute
        plain = pr.GRU(units=6, window=3, epochs=1, precision="float64").fit(kepler, verbose=0)
        g_plain = np.asarray(plain.network_(x, training=False))
        assert np.abs(np.asarray(plain.network_(x @ rot.T, training=False)) - g_plain @ rot.T).max() > 1e-3
    else:
        again = pr.load_model(model.save(tmp_path / "turning.keras"))
        np.testing.assert_array_equal(again.rollout(kepler).observed, model.rollout(kepler).observed)


def test_rotation_needs_a_system_that_declares_one(kepler):
    pendulum = pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=2, dt=0.1, t_end=2.0, seed=1))
    with pytest.raises(ValueError, match=r"^rotation = true turns the planar vectors a system declares, and the "
                                         r"pendulum system declares none among the observed theta, omega; set "
                                         r"rotation = false$"):
        pr.GRU(units=2, window=2, epochs=1, rotation=True).fit(pendulum, verbose=0)
    position = pr.StepData.from_trajectories(pr.simulate(system="kepler", n_traj=2, dt=0.05, t_end=2.0, seed=1),
                                             observation="position")
    with pytest.raises(ValueError, match=r"declares \[\['x', 'y'\], \['vx', 'vy'\]\] among the observed x, y;"):
        pr.GRU(units=2, window=2, epochs=1, rotation=True).fit(position, verbose=0)
    with pytest.raises(TypeError, match="^rotation must be true or false, got 'yes'$"):
        pr.GRU(rotation="yes")


def test_rotation_on_arrays_names_the_missing_declaration_and_help_shows_defaults():
    from physrnn.models.configs import describe_settings

    arrays = pr.StepData.from_arrays(np.ones((2, 10, 4)), dt=0.1, state_names=["x", "y", "vx", "vy"])
    with pytest.raises(ValueError, match=r"^rotation = true turns the planar vectors a system declares, and these "
                                         r"data's system declares none among the observed x, y, vx, vy;"):
        pr.GRU(units=2, window=2, epochs=1, rotation=True).fit(arrays, verbose=0)
    settings = {name: default for name, default, _ in describe_settings("sympnet")}
    assert settings["units"] == 32 and settings["precision"] == "float64" and settings["rotation"] is False
