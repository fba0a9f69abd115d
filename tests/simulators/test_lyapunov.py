"""The largest Lyapunov exponent (Benettin's method on the variational equations): known answers on linear
flows, about zero on an integrable orbit, positive and reproducible on the chaotic Duffing attractor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from simulators import Duffing, LinearOscillator, Pendulum, lyapunov_exponent


def linear_bound(matrix: np.ndarray, v0: np.ndarray, duration: float) -> float:
    """How far the growth rate of one vector under ṡ = Ms may sit from max Re λ(M) after T: with M = VΛV⁻¹ and
    c = V⁻¹v0, ‖v(T)‖ e^{−Re λ T} lies between σ_min(V)|c| and σ_max(V)|c| (equal real parts: an underdamped pair;
    for distinct real parts the slower mode only lowers the rate, by less than this once it has died out)."""
    lam, vec = np.linalg.eig(matrix)
    c = np.abs(np.linalg.solve(vec, v0))
    sv = np.linalg.svd(vec, compute_uv=False)
    return max(abs(np.log(sv[0] * np.linalg.norm(c))), abs(np.log(sv[-1] * np.linalg.norm(c)))) / duration


@pytest.mark.parametrize("eta", [0.2, 0.7])
def test_underdamped_oscillator_gives_minus_half_eta(eta):
    # Both eigenvalues of [[0, 1], [−ω0², −η]] have real part −η/2, so the rate is exact up to the bounded
    # oscillation of ‖v‖ (linear_bound) and the integrator's rtol 1e-10 (1e-10/T per unit time: negligible).
    duration = 400.0
    estimate = lyapunov_exponent(LinearOscillator(damping=eta), [[1.0, 0.0]], duration=duration)
    matrix = np.array([[0.0, 1.0], [-1.0, -eta]])
    bound = linear_bound(matrix, np.full(2, 2**-0.5), duration)
    assert abs(estimate.exponent[0] + eta / 2) <= bound + 1e-9
    assert bound < 5e-3  # the check is sharp: the bound is far below η/2
    assert estimate.duration == duration  # the averaging time is recorded with the estimate


def test_overdamped_oscillator_gives_the_slow_mode():
    # η = 3: eigenvalues −1.5 ± √1.25; after the fast mode has died out (e^{−2.24 T}) the rate is the slow
    # one's, up to ln|c_slow|/T.
    eta, duration = 3.0, 400.0
    estimate = lyapunov_exponent(LinearOscillator(damping=eta), [[1.0, 0.0]], duration=duration, transient=20.0)
    slow = -eta / 2 + np.sqrt(eta**2 / 4 - 1)
    assert abs(estimate.exponent[0] - slow) <= 2e-3, estimate


def test_linear_flow_matches_the_variational_growth_of_expm():
    # The same estimate from the exact flow map: ‖expm(MT) v0‖ read directly (no renormalisation needed).
    eta, duration = 0.2, 300.0
    matrix = np.array([[0.0, 1.0], [-1.0, -eta]])
    direct = np.log(np.linalg.norm(expm(matrix * duration) @ np.full(2, 2**-0.5))) / duration
    estimate = lyapunov_exponent(LinearOscillator(damping=eta), [[0.3, -0.2]], duration=duration, interval=1.5)
    assert estimate.exponent[0] == pytest.approx(direct, abs=1e-9)  # the renormalised sum telescopes exactly


def test_integrable_pendulum_has_zero_exponent():
    # A libration orbit is regular: tangent vectors grow linearly in time (the period depends on the energy),
    # so the estimate is ln(cT)/T > 0 and shrinks with T; a positive exponent would be ≫ that.
    duration = 500.0  # the bound 2 ln(T)/T = 0.025 is a quarter of the chaotic Duffing's λ1 ≈ 0.1
    estimate = lyapunov_exponent(Pendulum(), [[1.0, 0.0]], duration=duration)
    assert 0 < estimate.exponent[0] < 2 * np.log(duration) / duration


def test_chaotic_duffing_is_positive_and_the_same_from_two_starts():
    # δ 0.3, α −1, β 1, F 0.5, Ω 1.2: two starts settle onto the one chaotic attractor (transient 50 periods) and
    # must agree within their combined standard errors (3σ), each clearly positive (> 4σ).
    duffing = Duffing(damping=0.3, linear_stiffness=-1.0, cubic_stiffness=1.0, drive_amplitude=0.5,
                      drive_frequency=1.2)
    period = 2 * np.pi / 1.2
    est = lyapunov_exponent(duffing, [[0.1, 0.0], [1.0, 0.5]], duration=100 * period, transient=50 * period)
    assert (est.exponent > 4 * est.stderr).all(), est
    assert abs(est.exponent[0] - est.exponent[1]) < 3 * np.hypot(*est.stderr), est


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="duration"):
        lyapunov_exponent(Pendulum(), [[1.0, 0.0]], duration=0.0)
    with pytest.raises(ValueError, match="transient"):
        lyapunov_exponent(Pendulum(), [[1.0, 0.0]], duration=1.0, transient=-1.0)


def test_a_transient_in_several_steps_keeps_the_drives_clock():
    # The transient is taken in steps of the renormalisation interval; on a driven orbit the clock must advance
    # by exactly the transient, however many steps it takes. One step (interval = transient) and five must agree
    # to the integration tolerance; a clock advanced by the wrong amount puts the drive out of phase.
    system = Pendulum(damping=0.3, natural_frequency=1.4, drive_amplitude=1.1, drive_frequency=0.9)
    start = [[0.4, -0.2]]
    one = lyapunov_exponent(system, start, 0.3, duration=10.0, transient=5.0, interval=5.0, batches=2)
    five = lyapunov_exponent(system, start, 0.3, duration=10.0, transient=5.0, interval=1.0, batches=2)
    assert five.exponent == pytest.approx(one.exponent, abs=1e-7)
