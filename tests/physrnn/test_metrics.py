"""Metrics on cases with known answers."""

import numpy as np
import pytest

from physrnn.evaluation import score
from physrnn.metrics import damping_from_decay, eigen_errors, max_error, nrmse, rmse, steady_state, valid_time
from simulators import EigenFlow, LinearOscillator, random_symmetric, solve, steady_state_response

T = np.linspace(0, 40, 801)


@pytest.fixture(scope="module")
def driven():
    osc = LinearOscillator(damping=[0.2, 0.5], drive_amplitude=0.5, drive_frequency=[1.3, 0.8], drive_phase=0.3)
    return osc, solve(osc, [[0.7, -0.3], [0.0, 1.0]], T)


def test_closed_form_against_itself_is_exact(driven):
    _, states = driven
    assert (rmse(true=states, pred=states) == 0).all() and (max_error(true=states, pred=states) == 0).all()
    assert (nrmse(true=states, pred=states) == 0).all()
    np.testing.assert_array_equal(valid_time(true=states, pred=states, time=T), [40.0, 40.0])  # never leaves: the horizon


def test_known_offsets():
    true = np.zeros((1, 5, 2))
    true[0, :, 0] = [0, 1, 0, -1, 0]  # std sqrt(0.4), range 2
    pred = true + np.array([0.1, 0.0])
    np.testing.assert_allclose(rmse(true=true, pred=pred), [[0.1, 0.0]])
    np.testing.assert_allclose(max_error(true=true, pred=pred), [[0.1, 0.0]])
    np.testing.assert_allclose(nrmse(true=true, pred=pred)[0, 0], 0.1 / np.sqrt(0.4))
    assert np.isnan(nrmse(true=true, pred=pred)[0, 1])  # a constant component has no scale


def test_valid_time_is_the_first_exceedance():
    t = np.arange(10.0)
    true = np.zeros((2, 10, 1))
    true[:, :, 0] = np.linspace(0, 1, 10)  # range 1
    pred = true.copy()
    pred[0, 6:, 0] += 0.2  # exceeds 10% of the range from t = 6
    pred[1, 4:, 0] = np.nan  # a diverged rollout is invalid from its first NaN
    np.testing.assert_array_equal(valid_time(true=true, pred=pred, time=t, fraction=0.1), [6.0, 4.0])


def test_phase_shift_is_recovered(driven):
    osc, states = driven
    late = T >= 30
    fit_true = steady_state(states[:, late, 0], T[late], osc.drive_frequency[:, 0], phase=0.3)
    # A rollout lagging by a known 0.25 rad at the drive frequency, same amplitude.
    shifted = fit_true.offset[:, None] + fit_true.amplitude[:, None] * np.cos(
        osc.drive_frequency[:, :1] * T[late] + 0.3 - fit_true.lag[:, None] - 0.25)
    fit = steady_state(shifted, T[late], osc.drive_frequency[:, 0], phase=0.3)
    np.testing.assert_allclose(fit.lag - fit_true.lag, 0.25, atol=1e-12)
    np.testing.assert_allclose(fit.amplitude, fit_true.amplitude, rtol=1e-12)


def test_steady_state_matches_the_resonance_curve():
    osc = LinearOscillator(damping=0.2, drive_amplitude=0.5, drive_frequency=[0.8, 1.0, 1.3], drive_phase=0.0)
    t = np.arange(0, 300, 0.05)
    x = solve(osc, np.zeros((3, 2)), t)[:, :, 0]
    late = t >= 250  # transient decayed by e^{-25}
    fit = steady_state(x[:, late], t[late], osc.drive_frequency[:, 0])
    gain, lag = steady_state_response(0.2, 1.0, osc.drive_frequency[:, 0])
    np.testing.assert_allclose(fit.amplitude, 0.5 * gain, rtol=1e-9)
    np.testing.assert_allclose(fit.lag, lag, atol=1e-9)


@pytest.mark.parametrize("damping,natural_frequency", [(0.05, 1.0), (0.2, 1.0), (0.4, 2.0), (0.8, 1.5)])
def test_recovered_damping_matches_the_closed_form(damping, natural_frequency):
    osc = LinearOscillator(damping=damping, natural_frequency=natural_frequency)
    t = np.arange(0, 60, 0.01)
    x = solve(osc, [[1.0, 0.0]], t)[:, :, 0]
    fit = damping_from_decay(x, t)
    zeta = damping / (2 * natural_frequency)
    omega_d = natural_frequency * np.sqrt(1 - zeta**2)
    # Peaks of e^{-ζω0 t} cos(ω_d t − θ) are equally spaced by 2π/ω_d and decay by exactly e^{-2πζ/√(1−ζ²)}
    # per period. Parabolic interpolation on the 0.01 grid leaves at most 1.1e-7 relative error in ω_d and
    # 1.4e-9 in ζ over these cases (measured); the bounds keep ~10x headroom. Without the interpolation (the
    # sample maximum itself) the errors are 2.4e-5 to 1.1e-4 in ω_d and 1.6e-7 to 2.5e-6 in ζ: caught.
    np.testing.assert_allclose(fit.damped_frequency, omega_d, rtol=1e-6)
    np.testing.assert_allclose(fit.damping_ratio, zeta, rtol=2e-8)


def test_eigen_errors_of_the_exact_flow():
    a = random_symmetric(6, seed=3)
    x0 = np.random.default_rng(0).standard_normal((2, 6))
    states = solve(EigenFlow(matrix=a), x0, np.linspace(0, 200, 201))
    err = eigen_errors(states, a)
    np.testing.assert_allclose(err.eigenvalue_error, 0.0, atol=1e-12)
    np.testing.assert_allclose(err.eigenvector_angle, 0.0, atol=1e-6)  # arccos near 1: √(2·1e-12)
    np.testing.assert_allclose(err.norm_drift, 0.0, atol=1e-14)
    low = eigen_errors(solve(EigenFlow(matrix=-a), x0, np.linspace(0, 200, 201)), a, smallest=True)
    np.testing.assert_allclose(low.eigenvalue_error, 0.0, atol=1e-12)


def test_norm_drift_is_the_largest_relative_change_either_way():
    # A rollout whose norm shrinks to 0.9 and one whose norm grows to 1.2 of its start: drifts 0.1 and 0.2 (a
    # signed drift would read the shrinking one as no drift at all).
    a = np.diag([2.0, 1.0])
    x = np.array([1.0, 0.0])
    scale = np.array([[1.0, 0.95, 0.9], [1.0, 1.1, 1.2]])
    states = scale[:, :, None] * x
    np.testing.assert_allclose(eigen_errors(states, a).norm_drift, [0.1, 0.2], rtol=1e-12)


def test_truth_and_prediction_are_named_never_positional():
    # The audit: nrmse(pred, true) took the reverse of scikit-learn's (y_true, y_pred), and a swap changed the
    # value silently (the truth's spread scales NRMSE). Every metric and score() now refuse positional arrays.
    true = np.stack([np.cos(T), -np.sin(T)], axis=-1)[None]
    pred = 2 * true
    assert not np.allclose(nrmse(true=true, pred=pred), nrmse(true=pred, pred=true))  # the order matters
    for fn in (rmse, nrmse, max_error):
        with pytest.raises(TypeError, match=r"takes 0 positional arguments"):
            fn(pred, true)
    with pytest.raises(TypeError, match=r"takes 0 positional arguments"):
        valid_time(pred, true, T)
    with pytest.raises(TypeError, match=r"takes 0 positional arguments"):
        score(pred, true, T, components=("x", "v"))


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"prediction of shape \(1, 3, 2\) and truth of shape \(1, 4, 2\) differ"):
        rmse(true=np.zeros((1, 4, 2)), pred=np.zeros((1, 3, 2)))


def test_valid_lyapunov_times_is_valid_time_times_each_orbits_exponent(monkeypatch):
    from physrnn import metrics
    from simulators import Duffing, Pendulum

    monkeypatch.setattr(metrics, "LYAPUNOV_PERIODS", 40)  # a short average: this test checks the bookkeeping
    metric = metrics.METRICS["valid_lyapunov_times"]
    chaotic = Duffing(damping=0.3, linear_stiffness=-1.0, cubic_stiffness=1.0, drive_amplitude=0.5,
                      drive_frequency=1.2)
    # Only where chaos is possible (driven and nonlinear) and the full state is seen.
    assert metric.applies(chaotic, ("x", "v")) and not metric.applies(chaotic, ("x",))
    assert not metric.applies(Duffing(), ("x", "v"))  # free motion in the plane cannot be chaotic
    assert not metric.applies(LinearOscillator(drive_amplitude=0.5, drive_frequency=1.2), ("x", "v"))
    # Two orbits: the chaotic attractor, and a damped, weakly driven pendulum settling on a stable cycle (λ1 < 0).
    t = np.arange(0, 40.0001, 0.1)
    systems = [chaotic, Pendulum(damping=0.5, drive_amplitude=0.1, drive_frequency=1.2)]
    for system, s0 in zip(systems, ([[0.1, 0.0]], [[0.2, 0.0]])):
        true = solve(system, s0, t, method="reference")
        pred = true.copy()
        pred[:, 100:] += 10.0  # wrong from t = 10 on
        value = metric.compute(true=true, pred=pred, time=t, system=system, valid_fraction=0.1)
        exponent = metrics.attractor_exponent(system, true[:, 0], t[0]).exponent
        if system is chaotic:
            assert exponent[0] > 0
            np.testing.assert_allclose(value, 10.0 * exponent)
        else:
            assert exponent[0] < 0 and np.isnan(value).all()  # no chaos: no Lyapunov time to count in
