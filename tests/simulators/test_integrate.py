"""Batched integrators: convergence order from a log-log fit, tolerances met per trajectory, input checks."""

import numpy as np
import pytest

from simulators import EigenFlow, LinearOscillator, random_symmetric, solve

DRIVEN = LinearOscillator(damping=0.3, drive_amplitude=0.5, drive_frequency=1.3, drive_phase=0.4)
S0 = np.array([[0.7, -0.3], [-0.2, 0.9]])


def _observed_order(system, s0, t_end, n_steps_list, method):
    errors = []
    for n in n_steps_list:
        t = np.linspace(0.0, t_end, n + 1)
        final = solve(system, s0, t, method=method)[:, -1]
        exact = solve(system, s0, t[[0, -1]])[:, -1]
        errors.append(np.abs(final - exact).max())
    h = t_end / np.array(n_steps_list)
    slope = np.polyfit(np.log(h), np.log(errors), 1)[0]
    return slope, errors


@pytest.mark.parametrize(
    "method,order,n_steps",
    [
        # Steps small enough to be in the asymptotic regime, large enough that RK4's error stays far above
        # rounding (the smallest error here is ~1e-10).
        ("euler", 1, [200, 400, 800, 1600, 3200]),
        ("rk4", 4, [25, 50, 100, 200, 400]),
    ],
)
def test_convergence_order_oscillator(method, order, n_steps):
    slope, errors = _observed_order(DRIVEN, S0, 10.0, n_steps, method)
    # A fit over a factor 16 in h pins the order to within ±0.1 once the leading error term dominates.
    assert abs(slope - order) < 0.1, (slope, errors)


@pytest.mark.parametrize("method,order,n_steps", [("euler", 1, [200, 400, 800, 1600]),
                                                  ("rk4", 4, [20, 40, 80, 160])])
def test_convergence_order_eigen_flow(method, order, n_steps):
    flow = EigenFlow(matrix=random_symmetric(5, seed=4))
    x0 = np.random.default_rng(1).standard_normal((3, 5)) / 2
    slope, errors = _observed_order(flow, x0, 4.0, n_steps, method)
    assert abs(slope - order) < 0.15, (slope, errors)  # nonlinear: a little more pre-asymptotic curvature


def test_substeps_equal_a_finer_grid():
    coarse = np.linspace(0, 5, 51)
    fine = np.linspace(0, 5, 501)
    a = solve(DRIVEN, S0, coarse, method="rk4", substeps=10)
    b = solve(DRIVEN, S0, fine, method="rk4")[:, ::10]
    # The same arithmetic up to how the intermediate times t_i + j·h round.
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


def test_euler_is_the_explicit_update():
    t = np.array([0.0, 0.05])
    step = solve(DRIVEN, S0, t, method="euler")[:, 1]
    np.testing.assert_array_equal(step, S0 + 0.05 * DRIVEN.rhs(0.0, S0))


def test_reference_meets_tolerance_for_every_trajectory_in_a_large_ensemble():
    # 300 trajectories with a wide spread of scales: the RMS error norm SciPy controls would let a small
    # trajectory's error hide behind the others; the √N tightening must keep each one within tolerance.
    rng = np.random.default_rng(0)
    n = 300
    osc = LinearOscillator(damping=rng.uniform(0, 3, n), natural_frequency=rng.uniform(0.5, 2, n))
    s0 = rng.uniform(-1, 1, (n, 2)) * np.logspace(-6, 0, n)[:, None]
    t = np.linspace(0, 20, 201)
    ref = solve(osc, s0, t, method="reference", rtol=1e-8, atol=1e-12)
    err = np.abs(ref - solve(osc, s0, t)).max(axis=(1, 2)) / np.abs(s0).max(axis=1)
    # Each trajectory's *relative* error stays within twice its tolerance rtol = 1e-8 (global accumulation on
    # damped motion stays of the order of the local tolerance; measured 3.8e-9). Without the √N tightening the
    # smallest trajectories reach 9.9e-8, which this bound must catch.
    assert err.max() < 2e-8, err.max()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="leapfrog"), r"unknown method 'leapfrog'; choose one of exact, euler, rk4, reference"),
        (dict(method="rk4", substeps=0), r"substeps must be a positive integer, got 0"),
        (dict(method="reference", rtol=0.0), r"rtol = 0\.0 is out of range; it must be > 0"),
    ],
)
def test_bad_integrator_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solve(DRIVEN, S0, [0.0, 1.0], **kwargs)


def test_tolerances_intervals_and_time_grids_are_refused_in_one_line():
    from simulators import LinearOscillator, lyapunov_exponent, solve

    osc = LinearOscillator(damping=0.3)
    with pytest.raises(ValueError, match=r"^atol = 0\.0 is out of range; it must be > 0$"):
        solve(osc, [[1.0, 0.0]], [0.0, 1.0], method="reference", atol=0.0)
    with pytest.raises(ValueError, match=r"^interval = 0\.0 is out of range; it must be > 0$"):
        lyapunov_exponent(osc, [[1.0, 0.0]], duration=1.0, interval=0.0)
    with pytest.raises(ValueError, match=r"^time must have at most 1 dimension\(s\), got shape \(2, 2\)"):
        solve(osc, [[1.0, 0.0]], [[0.0, 1.0], [2.0, 3.0]])
