"""The learned step map's diagnostics, on known answers: the linear map's Jacobian is e^{MΔt}, Euler's I + ΔtM,
RK4's the stability polynomial R(ΔtM), and ω0 and η come back from e^{MΔt}; a network's autodiff Jacobian against
finite differences of the same network; the linearisation at equilibria (Euler's and RK4's rates at the pendulum's
bottom and the eigen flow's ±v_max in closed form); Euler's increment is the vector field; Euler's energy growth
(1 + ω0²Δt²)^n over a long run; a planted error-growth exponent; the flags and the refusals."""

import numpy as np
import pytest
from scipy.linalg import expm

import physrnn as pr
from physrnn.diagnostics import (Diagnostics, error_growth, increments, linearise, long_horizon, long_truth,
                                 match_eigenvalues, oscillator_parameters)
from physrnn.models import Rollout
from simulators.integrate import rk4_step

DT = 0.1
OSC = dict(damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
M = np.array([[0.0, 1.0], [-1.0, -0.2]])  # ω0 = 1, η = 0.2
#: diagnose without the long run and with the exact exponents given (their own tests are below)
QUICK = dict(long_steps=0, lyapunov=np.zeros(3))


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
    d = pr.diagnose(pr.LinearMap(window=window).fit(train), test, points=4, **QUICK)
    np.testing.assert_allclose(d.exact, np.broadcast_to(expm(M * DT), d.exact.shape), atol=1e-13)
    np.testing.assert_allclose(d.jacobian, d.exact, atol=1e-10)
    assert d.summary()["eigenvalue_error_max"] < 1e-10


def test_euler_and_rk4_jacobians_are_their_stability_polynomials(oscillator):
    # For ṡ = Ms, Euler's step is (I + ΔtM) s and RK4's R(ΔtM) s: their Jacobians, to rounding.
    _, test = oscillator
    h = DT * M
    rk4 = np.eye(2) + h + h @ h / 2 + h @ h @ h / 6 + h @ h @ h @ h / 24
    for model, expected in ((pr.Euler(), np.eye(2) + h), (pr.RK4(), rk4)):
        d = pr.diagnose(model.fit(test), test, points=3, **QUICK)
        np.testing.assert_allclose(d.jacobian, np.broadcast_to(expected, d.jacobian.shape), atol=1e-15)


@pytest.mark.parametrize("system, params", [
    ("pendulum", dict(damping=0.1)),
    # Van der Pol's J depends on the velocity too: a stage evaluated at the wrong time moves the velocity of the
    # next stage state by Δt·ΔF, which the pendulum's J (a function of θ alone) cannot see.
    ("vanderpol", dict(mu=1.7)),
])
def test_rk4s_chain_rule_on_a_nonlinear_driven_system_matches_finite_differences(system, params):
    # Driven: J(t, s) changes inside the step, so a chain rule with a wrong stage state or time fails.
    # Central differences with h = 1e-6 on O(1) states are good to ~1e-9.
    data = pr.StepData.from_trajectories(pr.simulate(system=system, n_traj=2, dt=0.3, t_end=3.0, seed=3,
                                                     method="reference", drive_amplitude=0.8,
                                                     drive_frequency=1.1, **params))
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


@pytest.mark.parametrize("leak_rate", [1.0, 0.6])
def test_the_echo_state_jacobian_in_closed_form_is_the_keras_networks_autodiff(oscillator, leak_rate):
    # The ESN's Jacobian is written out by hand (NumPy); here TensorFlow differentiates the saved Keras layers
    # instead: the same reservoir state (the true history up to n − 1), the latest input varied. Two float64
    # routes to one derivative of an O(1) map: agreement to rounding.
    import tensorflow as tf

    train, test = oscillator
    model = pr.ESN(units=30, washout=10, leak_rate=leak_rate, precision="float64").fit(train)
    steps = np.array([11, 40, 150])
    closed_form = model.step_jacobian(test, steps)[:, :, 0]  # (n_traj, 3, 2, 2)
    net = model.network_
    cell = net.get_layer("reservoir").cell
    scaled = np.asarray(net.get_layer("input_scaling")(tf.constant(test.inputs)), np.float64)
    h = np.zeros((test.n_traj, 30))
    history = []
    for i in range(steps.max()):
        h = np.asarray(cell(tf.constant(scaled[:, i]), [tf.constant(h)])[0], np.float64)
        history.append(h)
    for k, n in enumerate(steps):
        x = tf.constant(test.inputs[:, n])
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = net.get_layer("input_scaling")(x)
            h_next, _ = cell(z, [tf.constant(history[n - 1])])
            g = net.get_layer("increment")(net.get_layer("readout")(tf.concat([h_next, z], axis=-1)))
        autodiff = np.eye(2) + DT * tape.batch_jacobian(g, x).numpy()[..., :2]
        np.testing.assert_allclose(closed_form[:, k], autodiff, rtol=0, atol=1e-12)


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
    d = pr.diagnose(pr.Euler().fit(test), test, points=2, **QUICK)
    assert d.parameters["damping"] == pytest.approx(0.1, abs=5e-3)
    assert d.summary()["damping_rel_error_floor"] < 1e-10  # the estimator on the exact map
    # against the truth η = 0.2 (not 1, where a product would pass for a ratio): |0.1/0.2 − 1| = 0.5
    assert d.summary()["damping_rel_error_median"] == pytest.approx(0.5, abs=0.03)


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


def test_the_full_diagnose_returns_every_part_and_its_summary_is_json_ready(oscillator):
    import json

    train, test = oscillator
    d = pr.diagnose(pr.LinearMap(window=2).fit(train), test, points=2, increment_points=3, long_steps=50)
    summary = json.loads(json.dumps(d.summary()))
    assert set(summary) >= {"eigenvalue_error_median", "per_trajectory", "increments", "long_horizon", "growth"}
    assert summary["long_horizon"]["steps"] == 50 and summary["increments"]["points"] == 3 * 3
    # the exact exponent of the damped oscillator by Benettin's method: max Re λ(M) = −η/2 (error ~ ln κ/T)
    assert summary["growth"]["lyapunov_exponent_median"] == pytest.approx(-0.1, abs=5e-3)


# ---------------------------------------------------------------------------------------------- equilibria
def _held(system_name, dt, **params):
    return pr.StepData.from_trajectories(pr.simulate(system=system_name, n_traj=2, dt=dt, t_end=3.0, seed=4,
                                                     **params))


def test_euler_and_rk4_linearised_at_the_pendulums_equilibria_have_their_closed_form_rates():
    # At the bottom J_f = [[0, 1], [−ω0², 0]], eigenvalues ±iω0: Euler's map has 1 ± iω0Δt, RK4's R(±iω0Δt),
    # so r = ln(·)/Δt exactly (rounding); the exact flow map's rates are ±iω0 (variational equations at rtol
    # 1e-12: 1e-10). At the top (a saddle) the exact rates are ±ω0.
    w0, dt = 1.3, 0.1
    data = _held("pendulum", dt, natural_frequency=w0)
    z = np.array([-1j, 1j]) * w0 * dt
    rk4 = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    for model, lam in ((pr.Euler(), 1 + z), (pr.RK4(), rk4)):
        lin = linearise(model.fit(data), data)
        assert set(lin) == {"bottom", "top"}
        bottom = lin["bottom"]
        np.testing.assert_allclose(np.sort_complex(bottom.exact_rates), np.broadcast_to(1j * w0 * np.array([-1, 1]),
                                                                                        (2, 2)), atol=1e-10)
        np.testing.assert_allclose(np.sort_complex(bottom.rates), np.broadcast_to(np.log(lam) / dt, (2, 2)),
                                   atol=1e-12)
        np.testing.assert_allclose(np.sort(lin["top"].exact_rates.real), np.broadcast_to([-w0, w0], (2, 2)),
                                   atol=1e-9)
    # Euler's rate error: |ln(1 + iω0Δt)/Δt − iω0| / ω0, about ω0Δt/2 (its spurious growth)
    err = linearise(pr.Euler().fit(data), data)["bottom"].rate_error
    np.testing.assert_allclose(err, np.abs(np.log(1 + 1j * w0 * dt) / dt - 1j * w0) / w0, rtol=1e-9)
    assert linearise(pr.RK4().fit(data), data)["bottom"].summary()["rate_rel_error_max"] < 1e-4  # (ω0Δt)⁴/120
    # The summary a report reads, in absolute values with their signs: Euler's frequency atan(ω0Δt)/Δt below ω0,
    # and its growth rate ln(1 + ω0²Δt²)/(2Δt) > 0 where the exact flow's is 0, at each of the 2 trajectories.
    summary = linearise(pr.Euler().fit(data), data)["bottom"].summary()
    assert summary["points"] == 2
    assert summary["frequency_median"] == pytest.approx(np.arctan(w0 * dt) / dt, rel=1e-12)
    assert summary["frequency_exact_median"] == pytest.approx(w0, rel=1e-10)
    assert summary["growth_rate_median"] == pytest.approx(np.log1p((w0 * dt) ** 2) / (2 * dt), rel=1e-10)
    assert abs(summary["growth_rate_exact_median"]) < 1e-10
    assert summary["rate_rel_error_median"] == pytest.approx(err[0], rel=1e-12) == summary["rate_rel_error_max"]
    assert np.array(summary["rates"]).shape == (2, 2, 2) and np.array(summary["exact_rates"]).shape == (2, 2, 2)


def test_an_equilibrium_no_trajectory_has_is_skipped_not_the_end(monkeypatch):
    # A system may declare an equilibrium that no test trajectory's parameters allow (all NaN) before one they
    # do: the first is left out and the next still read.
    data = _held("pendulum", 0.1, natural_frequency=1.3)
    real = type(data.system).equilibria

    def equilibria(self):
        return {"nowhere": np.full((self.n_traj, 2), np.nan), **real(self)}

    monkeypatch.setattr(type(data.system), "equilibria", equilibria)
    assert set(linearise(pr.Euler().fit(data), data)) == {"bottom", "top"}


def test_the_steady_window_is_the_last_fraction_of_the_time():
    from physrnn.analysis import steady_start

    time = np.arange(10.0)  # 0 .. 9: the last third starts at t = 9 − 3 = 6
    assert steady_start(time, 1 / 3) == 6 and steady_start(time + 5.0, 0.5) == 5  # 14 − 4.5 = 9.5: index 5


def test_the_eigen_flows_linearisation_at_v_max_gives_the_eigenvalue_gaps():
    # At ±v_max on the unit sphere J_f = A − λmax I: rates λ_i − λmax (one 0, the norm); Euler's map there has
    # 1 + Δt(λ_i − λmax), so its rates are ln(1 + Δt gap)/Δt, to rounding.
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, -1.0]])
    w = np.linalg.eigvalsh(a)
    dt = 0.05
    data = pr.StepData.from_trajectories(pr.simulate(system="eigen", n_traj=2, dt=dt, t_end=2.0, seed=5, size=3,
                                                     matrix=a.tolist()))
    lin = linearise(pr.Euler().fit(data), data)
    assert set(lin) == {"+v_max", "-v_max"}
    for part in lin.values():
        np.testing.assert_allclose(np.sort(part.exact_rates.real, axis=-1), np.broadcast_to(w - w[-1], (2, 3)),
                                   atol=1e-9)
        np.testing.assert_allclose(np.sort(part.rates.real, axis=-1),
                                   np.broadcast_to(np.log(1 + dt * (w - w[-1])) / dt, (2, 3)), atol=1e-12)


def test_a_linear_map_fitted_on_free_decay_is_linearised_exactly_at_rest():
    data = _held("oscillator", 0.1, damping=0.3, natural_frequency=1.2)
    lin = linearise(pr.LinearMap(window=2).fit(data), data)["rest"]
    assert lin.summary()["rate_rel_error_max"] < 1e-9  # least squares exact to ~1e-14, the backward flow 1e-12


# ---------------------------------------------------------------------------------------------- increments
def test_eulers_increment_is_the_vector_field_and_the_exact_increment_is_order_dt_from_it():
    # Euler's g is f itself (rounding), so its error against the exact increment is the O(Δt) floor; the linear
    # map's g is the exact increment (1e-12); halving Δt halves the floor (to O(Δt²): 5 %).
    floors = []
    for dt in (0.1, 0.05):
        data = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=3, dt=dt, t_end=6.0, seed=6,
                                                         damping=0.2))
        steps = (np.arange(2, 40, 5) * 0.1 / dt).round().astype(int)  # the same states at either step
        euler = increments(pr.Euler().fit(data), data, steps)
        assert euler.field_gap.max() < 1e-13
        np.testing.assert_allclose(euler.error, euler.floor, rtol=1e-12)
        summary = euler.summary()  # what the report reads
        assert summary["points"] == euler.error.size and len(summary["map"]["error"]) == euler.error.size
        assert summary["error_max"] == np.max(euler.error) and summary["error_median"] == np.median(euler.error)
        assert summary["floor_median"] == np.median(euler.floor) and summary["field_gap_median"] < 1e-13
        linear = increments(pr.LinearMap(window=1).fit(data), data, steps)
        assert linear.error.max() < 1e-12
        floors.append(np.median(euler.floor))
    assert floors[0] / floors[1] == pytest.approx(2.0, rel=0.05)


def test_the_exact_increment_is_the_flow_not_the_next_state_of_data_an_integrator_made():
    # Lorenz-63 made by SciPy's RK23 (Gauthier et al.'s data): its next state carries RK23's error, 1e-4 to 1e-2 of
    # the increment; the exact increment is the reference flow over Δt from each state (1e-9).
    from simulators import solve

    data = pr.StepData.from_trajectories(pr.simulate(system="lorenz63", n_traj=2, dt=0.025, t_end=2.0, seed=3,
                                                     method="rk23"))
    steps = np.array([5, 30, 60])
    inc = increments(pr.Euler().fit(data), data, steps)
    flow = np.stack([solve(data.system, data.states[:, n], data.time[n] + [0, data.dt], method="reference",
                           rtol=1e-13, atol=1e-13)[:, 1] for n in steps], axis=1)
    np.testing.assert_allclose(inc.exact, (flow - data.states[:, steps]) / data.dt, rtol=0, atol=1e-9)
    from_data = (data.states[:, steps + 1] - data.states[:, steps]) / data.dt
    assert np.abs(from_data - inc.exact).max() > 1e-3
    # Euler's learned increment is the field itself, in the units of a rate (not times Δt²), at these steps
    np.testing.assert_allclose(inc.learned, inc.field, rtol=1e-12)
    np.testing.assert_array_equal(inc.steps, steps)


# ---------------------------------------------------------------------------------------------- long runs
def test_eulers_energy_grows_as_one_plus_omega_dt_squared_to_the_n_over_a_long_run():
    # Euler on x'' = −ω0²x multiplies E by (1 + ω0²Δt²) every step: after the N − 1 closed-loop steps of a run
    # of N, the relative drift is (1 + ω0²Δt²)^(N−1) − 1, exactly (rounding: 1e-12). The truth's is rounding.
    w0, dt, n = 1.0, 0.05, 2000
    data = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=4, dt=dt, t_end=3.0, seed=7,
                                                     natural_frequency=w0))
    long = long_truth(data, n_steps=n, starts=3)
    assert long.n_traj == 3 and long.observed.shape[1] == n
    h = long_horizon(pr.Euler().fit(data), long)
    np.testing.assert_allclose(h.drift["energy"], (1 + (w0 * dt) ** 2) ** (n - 1) - 1, rtol=1e-9)
    assert h.drift_exact["energy"].max() < 1e-12
    assert h.behaviour.tolist() == h.behaviour_exact.tolist() == ["bounded"] * 3
    linear = long_horizon(pr.LinearMap(window=1).fit(data), long)
    assert linear.drift["energy"].max() < 1e-9 and linear.late_amplitude_error.max() < 1e-9


def test_drift_of_a_negative_invariant_is_measured_against_its_magnitude():
    # Kepler's energy is negative on bound orbits (μ = 2.7, a = 1.3: ε = −μ/2a = −1.04). Euler spirals outward and
    # raises it; its drift, recomputed here from Euler's own steps in NumPy, is max|ε_n − ε_0| / |ε_0| > 0. A
    # drift divided by ε_0 itself would be negative and read as zero drift however far the model went.
    dt, n = 0.01, 600
    data = pr.StepData.from_trajectories(pr.simulate(system="kepler", n_traj=3, dt=dt, t_end=1.0, seed=5,
                                                     gravitational_parameter=2.7, semi_major_axis=1.3,
                                                     eccentricity=0.4))
    long = long_truth(data, n_steps=n, starts=2)
    h = long_horizon(pr.Euler().fit(data), long)
    mu = 2.7
    s = long.states[:, 0].copy()
    energies = []
    for _ in range(n):
        x, y, vx, vy = s.T
        energies.append(0.5 * (vx**2 + vy**2) - mu / np.hypot(x, y))
        r3 = np.hypot(x, y) ** 3
        s = s + dt * np.stack([vx, vy, -mu * x / r3, -mu * y / r3], axis=-1)
    energies = np.array(energies)  # (n, 2)
    assert (energies[0] < -1.0).all()
    expected = np.abs(energies - energies[0]).max(axis=0) / np.abs(energies[0])
    assert (expected > 1e-3).all()
    np.testing.assert_allclose(h.drift["energy"], expected, rtol=1e-9)
    assert h.drift_exact["energy"].max() < 1e-12
    assert (h.drift["angular_momentum"] > 0).all()


def test_long_runs_tell_a_fixed_point_from_a_divergence():
    # Damped (η = 0.5) over t = 100: e^{−25}, a fixed point for the truth and for Euler (stable at Δt = 0.05);
    # RK4 at ω0Δt = 3 lies outside its stability region on the imaginary axis (|R(3i)| > 1): it diverges.
    data = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=2, dt=0.05, t_end=3.0, seed=8,
                                                     damping=0.5))
    h = long_horizon(pr.Euler().fit(data), long_truth(data, n_steps=2000, starts=2))
    assert h.behaviour_exact.tolist() == h.behaviour.tolist() == ["fixed point"] * 2
    assert h.summary()["diverged"] == 0 and h.summary()["divergence_time_median"] is None
    fast = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=2, dt=3.0, t_end=30.0, seed=8))
    h = long_horizon(pr.RK4().fit(fast), long_truth(fast, n_steps=400, starts=2))
    assert h.behaviour.tolist() == ["diverged"] * 2 and h.summary()["diverged"] == 2
    assert 0 < h.summary()["divergence_time_median"] < 400 * 3.0


# ---------------------------------------------------------------------------------------------- error growth
def _planted(rate, size):
    time = np.arange(400) * 0.05
    true = np.stack([np.sin(time), np.cos(time)], axis=-1)[None].repeat(2, axis=0)
    pred = true + size * np.exp(rate * time)[None, :, None]
    roll = Rollout(time=time, observed=pred, context=1, diverged=np.zeros(2, bool), diverged_at=-np.ones(2, int),
                   bound=1e3, seconds=0.0)
    return roll, pr.StepData.from_arrays(true, dt=0.05)


def test_error_growth_recovers_a_planted_exponent_and_ignores_rounding():
    # e(t) = √2 · 1e-8 e^{0.7t} exactly: the slope of ln e is 0.7 (rounding of the fit: 1e-9); it is fitted only
    # until the error reaches 0.1 of the signal's range (t ≈ 23.5 lies beyond this 20-long horizon, so all of it).
    roll, data = _planted(0.7, 1e-8)
    g = error_growth(roll, data, lyapunov=np.zeros(2))
    np.testing.assert_allclose(g.exponent, 0.7, rtol=1e-9)
    # errors at 1e-16, below the rounding floor: no exponent is read into them
    roll, data = _planted(0.7, 1e-16 * np.exp(-0.7 * 19))
    assert np.isnan(error_growth(roll, data, lyapunov=np.zeros(2)).exponent).all()
    # past the valid-time level the error saturates and is left out: a jump to 1 there changes nothing
    roll, data = _planted(1.0, 1e-8)
    cut = roll.observed.copy()
    cut[:, 380:] = data.observed[:, 380:] + 1.0  # e^{t} 1e-8 passes 0.2 (0.1 of the range 2) at t ≈ 16.8 < 19
    jumped = Rollout(**{**roll.__dict__, "observed": cut})
    np.testing.assert_allclose(error_growth(jumped, data, lyapunov=np.zeros(2)).exponent, 1.0, rtol=1e-9)


@pytest.mark.parametrize("above, read", [(10, True), (9, False)])
def test_error_growth_needs_ten_samples_above_rounding(above, read):
    # Only the last `above` samples carry an error (1e-6 e^{0.7t}, above the rounding floor and below the valid
    # level): ten are enough to read the slope 0.7, nine are not.
    roll, data = _planted(0.7, 0.0)
    time = roll.time
    planted = roll.observed.copy()
    planted[:, -above:] += 1e-6 * np.exp(0.7 * (time[-above:] - time[-1]))[None, :, None]
    g = error_growth(Rollout(**{**roll.__dict__, "observed": planted}), data, lyapunov=np.zeros(2))
    if read:
        np.testing.assert_allclose(g.exponent, 0.7, rtol=1e-6)
    else:
        assert np.isnan(g.exponent).all()


def test_drift_counts_a_state_outside_the_invariants_domain_and_stops_at_a_divergence():
    from physrnn.diagnostics import _peak, _relative_change

    def log_invariant(states):  # V-like: defined only for positive states
        return np.log(states[..., 0])

    states = np.ones((3, 6, 1))
    states[0, 3] = -1.0  # leaves the domain before any divergence: not a small drift
    states[1, 4:] = np.nan  # diverged at step 4: the NaN after it is not drift
    states[1, 2] = np.e  # ln e − ln 1 = 1 before the divergence
    states[2, 5] = np.e**0.5
    drift = _peak(_relative_change(log_invariant, states, np.array([-1, 4, -1])))
    assert drift[0] == np.inf and drift[1] == pytest.approx(1.0) and drift[2] == pytest.approx(0.5)


def test_exact_exponents_of_a_system_that_may_be_chaotic_are_the_cached_attractor_estimate():
    # A driven Duffing may be chaotic: its exponents are the 200-period estimate the valid Lyapunov times use
    # (the same numbers, from the same cache), not one over the test horizon, whose value differs.
    from physrnn.diagnostics import exact_exponents
    from physrnn.metrics import attractor_exponent
    from simulators import lyapunov_exponent

    test = pr.StepData.from_trajectories(pr.simulate(
        system="duffing", n_traj=2, dt=0.05, t_end=6.0, seed=3, damping=0.3, linear_stiffness=-1.0,
        cubic_stiffness=1.0, drive_amplitude=0.5, drive_frequency=1.2, method="reference"))
    assert test.system.may_be_chaotic()
    got = exact_exponents(test, 10)
    expected = attractor_exponent(test.system, test.states[:, 10], test.time[10]).exponent
    np.testing.assert_array_equal(got, expected)
    short = lyapunov_exponent(test.system, test.states[:, 10], test.time[10],
                              duration=float(test.time[-1] - test.time[10])).exponent
    assert np.abs(got - short).max() > 1e-2


def test_the_increments_summary_reads_each_number_off_its_own_points():
    # Three states of three components (so y is the second, not the last): every error relative to the RMS
    # exact increment, 5 here; the map lists the points in order.
    from physrnn.diagnostics import Increments

    exact = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 5.0], [4.0, 3.0, 0.0]]])
    learned = exact + np.array([[[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.5]]])
    field = exact + np.array([[[0.0, 0.1, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.3]]])
    states = np.arange(9.0).reshape(1, 3, 3)
    s = Increments(steps=np.array([2, 5, 9]), states=states, learned=learned, exact=exact, field=field).summary()
    assert s["points"] == 3
    assert s["error_median"] == pytest.approx(0.2) and s["error_max"] == pytest.approx(0.5)
    assert s["floor_median"] == pytest.approx(0.04)
    assert s["field_gap_median"] == pytest.approx(np.linalg.norm([0.0, 1.0, 0.0] - np.array([0.2, 0.0, 0.0])) / 5)
    assert s["map"] == {"x": [0.0, 3.0, 6.0], "y": [1.0, 4.0, 7.0], "error": pytest.approx([0.1, 0.2, 0.5]),
                        "floor": pytest.approx([0.02, 0.04, 0.06])}


def test_diagnose_refuses_data_without_a_system_and_names_a_bad_count(oscillator):
    train, test = oscillator
    model = pr.LinearMap().fit(train)
    arrays = pr.StepData.from_arrays(test.observed, dt=test.dt)
    with pytest.raises(ValueError, match=r"^diagnose needs data that carry their system \(from a trajectory file or "
                                         r"a simulation\)$"):
        pr.diagnose(model, arrays, **QUICK)
    with pytest.raises(ValueError, match=r"^points must be a positive integer, got 0$"):
        pr.diagnose(model, test, points=0, **QUICK)


def test_the_exact_jacobian_broadcasts_one_parameter_set_over_the_trajectories():
    # One parameter set for 3 trajectories of 40 steps: the system is repeated over the trajectories (not the steps).
    from physrnn.diagnostics import exact_step_jacobian
    from simulators import LinearOscillator

    system = LinearOscillator(damping=0.3, natural_frequency=1.4)
    time = np.arange(40) * 0.1
    states = np.stack([np.stack([np.cos(time), np.sin(time)], -1)] * 3)
    jac = exact_step_jacobian(system, states, time, np.array([2, 17]), 0.1)
    m = np.array([[0.0, 1.0], [-1.96, -0.3]])
    np.testing.assert_allclose(jac, np.broadcast_to(expm(m * 0.1), (3, 2, 2, 2)), atol=1e-12)


def test_long_runs_from_a_single_start(oscillator):
    _, test = oscillator
    truth = long_truth(test, n_steps=5, starts=1)
    assert truth.n_traj == 1 and truth.observed.shape[1] == 5


def test_the_increments_map_of_a_one_component_state_reads_that_component_twice():
    from physrnn.diagnostics import Increments

    states = np.array([[[1.0], [2.0], [3.0]]])
    one = np.ones((1, 3, 1))
    s = Increments(steps=np.arange(3), states=states, learned=one, exact=one, field=one).summary()
    assert s["map"]["x"] == s["map"]["y"] == [1.0, 2.0, 3.0]


def _pendulum_energy_error(step, n_steps=100_000, dt=0.1):
    """|E(t) − E(0)|/E(0) of a pendulum (ω0 = 1.3) stepped by ``step`` from θ = 2.0 at rest."""
    s = np.array([2.0, 0.0])
    energy = lambda s: 0.5 * s[..., 1] ** 2 + 1.69 * (1 - np.cos(s[..., 0]))  # noqa: E731
    out = np.empty((n_steps, 2))
    for i in range(n_steps):
        out[i] = s
        s = step(s, dt)
    return np.abs(energy(out) - energy(out[0])) / energy(out[0])


def _leapfrog(s, dt):
    w = s[1] - 0.5 * dt * 1.69 * np.sin(s[0])
    q = s[0] + dt * w
    return np.array([q, w - 0.5 * dt * 1.69 * np.sin(q)])


def _rk4(s, dt):
    f = lambda s: np.array([s[1], -1.69 * np.sin(s[0])])  # noqa: E731
    k1 = f(s)
    k2 = f(s + 0.5 * dt * k1)
    k3 = f(s + 0.5 * dt * k2)
    k4 = f(s + dt * k3)
    return s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def test_the_envelope_exponent_reads_known_growth_laws():
    from physrnn.diagnostics import GROWTH_FLOOR, envelope_exponent, growth_class

    time = 5.0 + 0.1 * np.arange(100_000)  # a run that does not start at t = 0
    t = time - time[0]
    rng = np.random.default_rng(0)
    errors = np.stack([
        2e-3 * t**0.7,  # a planted power law: read exactly
        1e-4 * np.abs(np.sin(1.3 * t) + 0.4 * np.sin(0.37 * np.sqrt(2) * t)),  # bounded, quasi-periodic
        3e-9 * t + 1e-7 * np.abs(np.sin(t)),  # a steady drift under an oscillation
        np.zeros(t.size),  # conserved exactly
        1e-11 * t / t[-1],  # a drift below rounding's floor: no model's
    ])
    alpha = envelope_exponent(time, errors)
    assert alpha[0] == pytest.approx(0.7, abs=1e-9)
    assert abs(alpha[1]) < 0.05 and alpha[2] == pytest.approx(1.0, abs=0.05) and np.abs(alpha[3:]).max() < 1e-12
    assert growth_class(alpha).tolist() == ["secular", "bounded", "secular", "bounded", "bounded"]
    walks = 1e-8 * np.abs(np.cumsum(rng.normal(size=(20, t.size)), axis=1))  # random walks: √t on average
    assert np.median(envelope_exponent(time, walks)) == pytest.approx(0.5, abs=0.1)
    diverged = errors[:2].copy()
    diverged[0, 700:] = np.nan
    diverged[1, 9] = np.inf  # left the invariant's domain
    np.testing.assert_array_equal(envelope_exponent(time, diverged), [np.nan, np.nan])
    assert growth_class(np.array([np.nan, GROWTH_FLOOR, GROWTH_FLOOR + 1e-9])).tolist() == [
        "diverged", "bounded", "secular"]


def test_a_symplectic_integrators_energy_error_is_bounded_and_rk4s_grows():
    # Störmer–Verlet conserves a modified energy: its error oscillates, bounded, over 10⁵ steps of Δt = 0.1 at
    # amplitude 2 rad; RK4's starts far smaller but dissipates steadily: secular, exponent near 1.
    from physrnn.diagnostics import envelope_exponent

    time = 0.1 * np.arange(100_000)
    leapfrog, rk4 = _pendulum_energy_error(_leapfrog), _pendulum_energy_error(_rk4)
    alpha = envelope_exponent(time, np.stack([leapfrog, rk4]))
    assert abs(alpha[0]) < 0.05 and alpha[1] == pytest.approx(1.0, abs=0.1)
    # The bounded error is the larger one early on (size is not the test): RK4's is 90× smaller over the first
    # 1000 steps and catches up by the end.
    assert rk4[:1000].max() < 0.02 * leapfrog[:1000].max() and rk4[-1] > 0.5 * leapfrog.max()
