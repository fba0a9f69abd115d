"""The oscillator's closed form against independent oracles, in every regime."""

import numpy as np
import pytest

from simulators import LinearOscillator, solve, steady_state_response

from .oracles import oscillator_by_expm

EPS = np.finfo(float).eps
S0 = np.array([[0.7, -0.3]])
T = np.linspace(0.0, 40.0, 401)

# name: (damping, natural_frequency, amplitudes, frequencies, phases)
CASES = {
    "undamped": (0.0, 1.0, [0.0], [0.0], [0.0]),
    "under": (0.3, 1.0, [0.0], [0.0], [0.0]),
    "under-stiff-w0": (0.5, 3.0, [0.0], [0.0], [0.0]),
    "critical": (2.0, 1.0, [0.0], [0.0], [0.0]),
    "near-critical-under": (2.0 - 1e-9, 1.0, [0.0], [0.0], [0.0]),
    "near-critical-over": (2.0 + 1e-9, 1.0, [0.0], [0.0], [0.0]),
    "over": (7.0, 1.0, [0.0], [0.0], [0.0]),
    "strongly-over": (40.0, 1.0, [0.0], [0.0], [0.0]),
    "driven": (0.2, 1.0, [0.5], [1.3], [0.4]),
    "driven-resonance-damped": (0.1, 1.0, [0.5], [1.0], [0.3]),
    "driven-resonance-undamped": (0.0, 1.0, [0.5], [1.0], [0.3]),
    "driven-near-resonance-undamped": (0.0, 1.0, [0.5], [1.0 + 1e-9], [0.3]),
    "driven-undamped-off-resonance": (0.0, 1.5, [0.5], [0.7], [1.1]),
    "static-force": (0.4, 1.0, [0.5], [0.0], [0.0]),
    "driven-over": (5.0, 1.0, [0.5], [0.8], [-0.5]),
    "driven-critical": (2.0, 1.0, [0.5], [1.0], [0.2]),
    "two-terms": (0.3, 1.0, [0.5, 0.2], [1.3, 0.7], [0.0, 1.0]),
    "two-terms-undamped-one-resonant": (0.0, 1.5, [0.5, 0.2], [1.5, 0.7], [0.0, 1.0]),
}


def _osc(case):
    eta, w0, f, om, ph = case
    return LinearOscillator(damping=eta, natural_frequency=w0, drive_amplitude=[f], drive_frequency=[om],
                            drive_phase=[ph])


@pytest.mark.parametrize("name", CASES)
def test_closed_form_matches_matrix_exponential(name):
    case = CASES[name]
    exact = solve(_osc(case), S0, T)[0]
    oracle = oscillator_by_expm(*case, S0[0], T)
    scale = max(1.0, np.abs(oracle).max())
    # Both sides are accurate to a few ulp of the solution's scale per evaluation (expm's relative error is
    # ~1e-15 for these norms); 1e-12 of the scale leaves two orders of magnitude for their rounding.
    np.testing.assert_allclose(exact, oracle, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("name", CASES)
def test_closed_form_matches_reference_integrator(name):
    osc = _osc(CASES[name])
    exact = solve(osc, S0, T)
    ref = solve(osc, S0, T, method="reference", rtol=1e-12, atol=1e-14)
    scale = max(1.0, np.abs(exact).max())
    # The reference's *global* error, not the closed form, sets this: local tolerances of 1e-12 accumulate
    # over hundreds of steps (measured worst 5e-10, over-damped, where the stiffness ratio is ~50).
    np.testing.assert_allclose(ref, exact, rtol=0, atol=1e-8 * scale)


def test_reference_converges_onto_closed_form():
    osc = _osc(CASES["over"])
    exact = solve(osc, S0, T)
    errors = [np.abs(solve(osc, S0, T, method="reference", rtol=tol, atol=tol * 1e-2) - exact).max()
              for tol in (1e-8, 1e-10, 1e-12)]
    # Each hundredfold tightening should buy at least a tenfold smaller error if the target is the truth.
    assert errors[1] < errors[0] / 10 and errors[2] < errors[1] / 10, errors


@pytest.mark.parametrize("name", CASES)
def test_initial_state_reproduced_at_t0(name):
    osc = _osc(CASES[name])
    exact = solve(osc, S0, T)
    if not osc.is_driven:
        # Free motion: Φ(0) = I exactly, so the initial state comes back bit for bit.
        np.testing.assert_array_equal(exact[:, 0], S0)
    else:
        # Driven and damped: (s0 − s_p(0)) + s_p(0) is exact up to one rounding of |s_p(0)| + |s0|.
        np.testing.assert_allclose(exact[:, 0], S0, rtol=0, atol=4 * EPS * (1 + np.abs(exact).max()))


def test_undamped_resonance_is_the_secular_t_sin_term():
    f, w0, phase = 0.5, 1.3, 0.3
    osc = LinearOscillator(damping=0.0, natural_frequency=w0, drive_amplitude=f, drive_frequency=w0,
                           drive_phase=phase)
    x = solve(osc, [[0.0, 0.0]], T)[0, :, 0]
    # From rest: x = F t sin(ω0 t + φ)/(2ω0) minus the free motion that cancels its initial velocity.
    expected = f * T * np.sin(w0 * T + phase) / (2 * w0) - f * np.sin(phase) * np.sin(w0 * T) / (2 * w0**2)
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-13 * np.abs(expected).max())


@pytest.mark.parametrize("damping,drive_frequency", [(0.2, 1.3), (0.2, 1.0), (0.5, 0.4), (3.0, 2.0)])
def test_steady_state_follows_resonance_curve(damping, drive_frequency):
    f, w0, phase = 0.5, 1.0, 0.2
    osc = LinearOscillator(damping=damping, natural_frequency=w0, drive_amplitude=f,
                           drive_frequency=drive_frequency, drive_phase=phase)
    # Late enough that the transient, which decays at least as e^{-ηt/2}... (slow root for over-damping)
    t = np.linspace(400.0, 420.0, 2001)
    x = solve(osc, [[0.9, 0.1]], np.concatenate([[0.0], t]))[0, 1:, 0]
    gain, lag = steady_state_response(damping, w0, drive_frequency)
    expected = f * gain * np.cos(drive_frequency * t + phase - lag)
    # ... is below e^{-40} of the start by t = 400; what remains is rounding of an O(1) solution.
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-12)


def test_resonance_curve_values():
    gain, lag = steady_state_response(0.2, 1.0, np.array([0.0, 1.0, 1e6]))
    # Static limit 1/ω0², peak 1/(ηω0) at Ω = ω0 with a quarter-period lag, and 1/Ω² far above.
    np.testing.assert_allclose(gain, [1.0, 5.0, 1e-12], rtol=1e-9)
    np.testing.assert_allclose(lag, [0.0, np.pi / 2, np.pi], atol=1e-6)


def test_undamped_free_motion_conserves_energy():
    osc = LinearOscillator(damping=0.0, natural_frequency=[0.5, 1.0, 2.0])
    states = solve(osc, np.array([[1.0, 0.0], [0.3, -0.2], [0.0, 1.0]]), np.linspace(0, 1000, 5001))
    energy = osc.energy(states)
    # cos²+sin² = 1 to a few ulp at every time: no drift, unlike any fixed-step integrator.
    np.testing.assert_allclose(energy, np.broadcast_to(energy[:, :1], energy.shape), rtol=1e-13)


def test_damping_regime_boundaries():
    osc = LinearOscillator(damping=[0.0, 1.0, 2.0, 3.0], natural_frequency=1.0)
    np.testing.assert_array_equal(osc.damping_ratio, [0.0, 0.5, 1.0, 1.5])


def test_ensemble_rows_equal_single_solutions():
    eta = np.array([0.0, 0.3, 2.0, 5.0])
    om = np.array([1.0, 1.3, 0.5, 2.0])
    s0 = np.array([[0.1, 0.2], [0.7, -0.3], [-1.0, 0.0], [0.0, 1.0]])
    batch = solve(LinearOscillator(damping=eta, drive_amplitude=0.5, drive_frequency=om), s0, T)
    for i in range(4):
        single = solve(LinearOscillator(damping=eta[i], drive_amplitude=0.5, drive_frequency=om[i]), s0[i:i + 1], T)
        # Same formulas on the same numbers; only the SIMD grouping of elementwise ops may differ.
        np.testing.assert_allclose(batch[i], single[0], rtol=0, atol=1e-15)


def test_time_grid_need_not_start_at_zero():
    osc = LinearOscillator(damping=0.2, drive_amplitude=0.5, drive_frequency=1.3, drive_phase=0.4)
    full = solve(osc, S0, T)
    tail = solve(osc, full[:, 100], T[100:])
    # Restarting from an exact state at t = 10 continues the same solution (drive phase refers to t = 0).
    np.testing.assert_allclose(tail, full[:, 100:], rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(damping=-0.1), ValueError, r"damping = -0\.1 is out of range; it must be >= 0"),
        (dict(damping=float("nan")), ValueError, r"damping = nan is not finite"),
        (dict(damping=[0.1, float("inf")]), ValueError, r"damping\[1\] = inf is not finite"),
        (dict(natural_frequency=0.0), ValueError, r"natural_frequency = 0\.0 is out of range; it must be > 0"),
        (dict(drive_frequency=-1.0), ValueError, r"drive_frequency = -1\.0 is out of range"),
        (dict(drive_amplitude=float("nan")), ValueError, r"drive_amplitude = nan is not finite"),
        (dict(damping="strong"), TypeError, r"damping must be a real number"),
        (dict(damping=[[0.1]]), ValueError, r"damping must have at most 1 dimension"),
        (dict(damping=[0.1, 0.2], natural_frequency=[1.0, 2.0, 3.0]), ValueError,
         r"disagree on the number of trajectories"),
        (dict(drive_amplitude=[[0.1, 0.2]], drive_frequency=[[1.0, 2.0, 3.0]]), ValueError,
         r"disagree on the number of drive terms"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        LinearOscillator(**kwargs)


@pytest.mark.parametrize(
    "s0,time,match",
    [
        ([[0.0, 1.0, 2.0]], T, r"initial_state must have shape \(n_traj, 2\)"),
        ([[np.nan, 1.0]], T, r"initial_state is not finite"),
        (S0, [0.0, 1.0, 1.0], r"time must be strictly increasing, but time\[2\] = 1\.0"),
        (S0, [0.0, np.inf], r"time\[1\] = inf is not finite"),
        (S0, [], r"time is empty"),
    ],
)
def test_bad_solve_inputs_are_rejected(s0, time, match):
    with pytest.raises(ValueError, match=match):
        solve(LinearOscillator(damping=0.1), s0, time)


def test_parameter_count_must_match_initial_states():
    with pytest.raises(ValueError, match=r"the system has 2 parameter sets but initial_state has 3 rows"):
        solve(LinearOscillator(damping=[0.1, 0.2]), np.zeros((3, 2)), T)
