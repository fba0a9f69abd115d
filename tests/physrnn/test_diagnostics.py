"""The learned step map's Jacobian, on known answers: the linear map's is e^{MΔt}, Euler's I + ΔtM, RK4's the
stability polynomial R(ΔtM), and ω0 and η come back from e^{MΔt}; a network's autodiff Jacobian against finite
differences of the same network; the flags and the refusals."""

import numpy as np
import pytest
from scipy.linalg import expm

import physrnn as pr
from physrnn.diagnostics import Diagnostics, match_eigenvalues, oscillator_parameters
from simulators.integrate import rk4_step

DT = 0.1
OSC = dict(damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
M = np.array([[0.0, 1.0], [-1.0, -0.2]])  # ω0 = 1, η = 0.2


@pytest.fixture(scope="module")
def oscillator():
    train = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=8, dt=DT, t_end=20.0, seed=1,
                                                      **OSC))
    test = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=3, dt=DT, t_end=20.0, seed=2,
                                                     **OSC))
    return train, test


@pytest.mark.parametrize("window", [1, 2])
def test_the_linear_maps_jacobian_is_the_exact_flow_map(oscillator, window):
    # Least squares on exact data of one linear system is exact to ~1e-14; with window 2 the map is read on the
    # true trajectories through the backward flow e^{−MΔt} (variational equations at rtol 1e-12): 1e-10 holds.
    train, test = oscillator
    d = pr.diagnose(pr.LinearMap(window=window).fit(train), test, points=4)
    np.testing.assert_allclose(d.exact, np.broadcast_to(expm(M * DT), d.exact.shape), atol=1e-13)
    np.testing.assert_allclose(d.jacobian, d.exact, atol=1e-10)
    assert d.summary()["eigenvalue_error_max"] < 1e-10


def test_euler_and_rk4_jacobians_are_their_stability_polynomials(oscillator):
    # For ṡ = Ms, Euler's step is (I + ΔtM) s and RK4's R(ΔtM) s: their Jacobians, to rounding.
    _, test = oscillator
    h = DT * M
    rk4 = np.eye(2) + h + h @ h / 2 + h @ h @ h / 6 + h @ h @ h @ h / 24
    for model, expected in ((pr.Euler(), np.eye(2) + h), (pr.RK4(), rk4)):
        d = pr.diagnose(model.fit(test), test, points=3)
        np.testing.assert_allclose(d.jacobian, np.broadcast_to(expected, d.jacobian.shape), atol=1e-15)


def test_rk4s_chain_rule_on_a_nonlinear_driven_system_matches_finite_differences():
    # Driven pendulum: J(t, s) changes inside the step, so a chain rule with a wrong stage state or time fails.
    # Central differences with h = 1e-6 on O(1) states are good to ~1e-9.
    data = pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=2, dt=0.3, t_end=3.0, seed=3,
                                                     method="reference", damping=0.1, drive_amplitude=0.8,
                                                     drive_frequency=1.1))
    jac = pr.RK4().fit(data).step_jacobian(data, [4])[:, 0, 0]
    t, s, eps = data.time[4], data.states[:, 4], 1e-6
    system = data.system
    fd = np.stack([(rk4_step(system.rhs, t, s + eps * e, 0.3) - rk4_step(system.rhs, t, s - eps * e, 0.3))
                   / (2 * eps) for e in np.eye(2)], axis=-1)
    np.testing.assert_allclose(jac, fd, atol=1e-8)


def test_a_networks_jacobian_is_the_derivative_of_the_network_at_each_lag(oscillator):
    # A float64 GRU with window 2: autodiff against central differences of its own increment at each window
    # position (position 0 is o_{n−1}, position 1 is o_n, which also carries the identity of s_{n+1} = s_n + Δt g).
    train, test = oscillator
    model = pr.GRU(units=6, window=2, epochs=1, precision="float64").fit(train, verbose=0)
    n = 7
    window = model.step_jacobian(test, [n])[:, 0]  # (n_traj, 2, 2, 2)
    u = test.inputs[:, n - 1:n + 1]
    eps = 1e-6

    def g(x):
        return np.asarray(model.network_(x, training=False))

    for pos in (0, 1):
        for j in range(2):
            up, down = u.copy(), u.copy()
            up[:, pos, j] += eps
            down[:, pos, j] -= eps
            column = DT * (g(up) - g(down)) / (2 * eps) + (np.eye(2)[:, j] if pos == 1 else 0.0)
            np.testing.assert_allclose(window[:, pos, :, j], column, atol=1e-8)


@pytest.mark.parametrize("eta", [0.2, 3.0])  # an under-damped pair, and two real eigenvalues
def test_omega0_and_eta_come_back_from_the_exact_flow_map(eta):
    matrix = np.array([[0.0, 1.0], [-1.0, -eta]])
    for dt in (0.05, 0.5):
        omega0, damping = oscillator_parameters(np.linalg.eigvals(expm(matrix * dt)), dt)
        assert abs(omega0 - 1.0) < 1e-10 and abs(damping - eta) < 1e-10 * max(1, eta)


def test_eulers_map_reads_as_half_the_damping(oscillator):
    # |1 + Δt(−η/2 ± iω_d)|² = 1 − ηΔt + ω0²Δt²: Euler's map damps by η − ω0²Δt = 0.1 instead of 0.2 (ω0 = 1,
    # Δt = 0.1), to O(Δt²): the estimator reads this from the map (a rollout would show the slow energy gain).
    _, test = oscillator
    d = pr.diagnose(pr.Euler().fit(test), test, points=2)
    assert d.parameters["damping"] == pytest.approx(0.1, abs=5e-3)
    assert d.summary()["damping_rel_error_floor"] < 1e-10  # the estimator on the exact map


def test_anti_damping_is_flagged_only_where_the_physics_damps():
    exact = np.broadcast_to(expm(M * DT), (1, 2, 2, 2)).copy()
    learned = exact.copy()
    learned[0, 1] *= 1.02  # at the second point the model's spectral radius exceeds 1
    lam_e = np.linalg.eigvals(exact)
    d = Diagnostics(model="x", steps=np.array([0, 1]), dt=DT, jacobian=learned, exact=exact,
                    eigenvalues=match_eigenvalues(np.linalg.eigvals(learned), lam_e), exact_eigenvalues=lam_e)
    assert d.anti_damping.tolist() == [[False, True]] and d.summary()["anti_damped_points"] == 1
    # A conservative map (a rotation, ρ = 1): growth by 1e-3 per step is flagged, rounding-level 1e-9 is not.
    c, s = np.cos(0.1), np.sin(0.1)
    rotation = np.broadcast_to(np.array([[c, -s], [s, c]]), (1, 2, 2, 2)).copy()
    learned = rotation * np.array([1 + 1e-9, 1 + 1e-3])[None, :, None, None]
    lam_e = np.linalg.eigvals(rotation)
    d = Diagnostics(model="x", steps=np.array([0, 1]), dt=DT, jacobian=learned, exact=rotation,
                    eigenvalues=match_eigenvalues(np.linalg.eigvals(learned), lam_e), exact_eigenvalues=lam_e)
    assert d.anti_damping.tolist() == [[False, True]]


def test_eigenvalues_are_paired_by_least_distance():
    exact = np.array([1 + 1j, 1 - 1j, 0.5])
    learned = np.array([0.49, 1.01 - 1j, 0.99 + 1j])
    np.testing.assert_array_equal(match_eigenvalues(learned, exact), [0.99 + 1j, 1.01 - 1j, 0.49])


def test_partial_observation_is_refused_in_one_line():
    data = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=2, dt=DT, t_end=2.0, seed=1),
                                         observation="position")
    with pytest.raises(ValueError, match="observe 1 of 2 components"):
        pr.diagnose(pr.LinearMap(window=2).fit(data), data)
