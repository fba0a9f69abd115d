"""Every physical quantity a system declares, measured against its own trajectory at non-degenerate parameters.

A declaration that is never measured can be off by any factor (√2 in a period, a sign in an angle) and every
consumer of it (valid time in periods, Lyapunov windows, the diagnostics' small-oscillation frequencies, a file's
recorded elements) silently inherits the error. Here each one is read off a trajectory: periods from zero
crossings, equilibria's frequencies from small oscillations about them, Kepler's elements from the orbit itself.
Parameters are chosen so that no two of them coincide and no factor is 1.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from simulators import (Duffing, EnsembleConfig, Kepler, LinearOscillator, LotkaVolterra, Pendulum, VanDerPol,
                        generate, solve)


def upward_crossings(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Times at which x crosses zero upwards, linearly interpolated between samples."""
    i = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    return t[i] - x[i] * (t[i + 1] - t[i]) / (x[i + 1] - x[i])


def measured_period(t: np.ndarray, x: np.ndarray) -> float:
    crossings = upward_crossings(t, x)
    assert len(crossings) >= 3, "too few oscillations to measure a period"
    return float(np.diff(crossings).mean())


def reference(system, s0, t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return solve(system, s0, t, method="reference", rtol=1e-12, atol=1e-14)


# A grid fine enough that linear interpolation of a crossing is good to ~(Δt ω)² / 8 relative: Δt = 1e-4.
T_FREE = np.linspace(0.0, 40.0, 400_001)


def test_oscillator_period_is_the_damped_period_of_its_own_trajectory():
    # γ = 0.3, ω0 = 1.7: ζ = 0.088, so ω_d = ω0 √(1 − ζ²) differs from ω0 by 0.39 %, ten thousand times the
    # tolerance; zero crossings of a damped oscillation are exactly π/ω_d apart.
    system = LinearOscillator(damping=0.3, natural_frequency=1.7)
    x = solve(system, [[1.0, -0.4]], T_FREE)[0, :, 0]
    assert system.characteristic_period()[0] == pytest.approx(measured_period(T_FREE, x), rel=1e-7)
    assert system.characteristic_period()[0] == pytest.approx(2 * np.pi / (1.7 * np.sqrt(1 - 0.0882352941**2)),
                                                             rel=1e-9)


@pytest.mark.parametrize("system, drive_frequency", [
    (LinearOscillator(damping=0.9, natural_frequency=1.3, drive_amplitude=0.7, drive_frequency=2.3), 2.3),
    (Pendulum(damping=0.9, natural_frequency=1.3, drive_amplitude=0.2, drive_frequency=2.3), 2.3),
    (Duffing(damping=0.9, linear_stiffness=1.3, cubic_stiffness=0.6, drive_amplitude=0.4, drive_frequency=2.3), 2.3),
    (VanDerPol(mu=0.4, drive_amplitude=3.0, drive_frequency=1.3), 1.3),
], ids=["oscillator", "pendulum", "duffing", "vanderpol"])
def test_driven_period_is_the_period_of_the_settled_motion(system, drive_frequency):
    # Strongly damped (or, for Van der Pol, driven hard near its own frequency, which entrains it), the motion
    # settles on the drive's period: s(t + T) = s(t) late in the run, and not at T·(1 ± 1 %).
    period = float(system.characteristic_period()[0])
    assert period == pytest.approx(2 * np.pi / drive_frequency, rel=1e-12)
    t = np.arange(0.0, 80.0 + 2 * period, period / 200)
    s = reference(system, [[0.3, -0.2]], t)[0]
    late = t > 60.0
    shift = 200  # samples in one period
    assert np.abs(s[late][shift:] - s[late][:-shift]).max() < 1e-6
    for wrong in (198, 202):
        assert np.abs(s[late][wrong:] - s[late][:len(s[late]) - wrong]).max() > 1e-3


@pytest.mark.parametrize("system, centre, frequency", [
    (Pendulum(natural_frequency=2.3), "bottom", 2.3),
    (Duffing(linear_stiffness=1.7, cubic_stiffness=0.4), "origin", np.sqrt(1.7)),
    (Duffing(linear_stiffness=-1.3, cubic_stiffness=0.7), "x+", np.sqrt(2.6)),
    (Duffing(linear_stiffness=-1.3, cubic_stiffness=0.7), "x-", np.sqrt(2.6)),
    (LotkaVolterra(alpha=1.3, beta=0.7, gamma=0.9, delta=0.4), "coexistence", np.sqrt(1.3 * 0.9)),
], ids=["pendulum", "duffing-hard", "duffing-well+", "duffing-well-", "lotka-volterra"])
def test_small_oscillations_about_each_centre_have_the_declared_period(system, centre, frequency):
    # Started 1e-5 from the declared equilibrium, the orbit's period is the linearised one to O(amplitude²); the
    # declared characteristic period (the small-oscillation period for free motion) must be that, and the
    # Jacobian there must have eigenvalues ±iω with the same ω.
    point = system.equilibria()[centre][0]
    assert np.all(np.isfinite(point))
    s = reference(system, [point + [1e-5, 0.0]], T_FREE)[0]
    period = measured_period(T_FREE, s[:, 0] - point[0])
    assert 2 * np.pi / period == pytest.approx(frequency, rel=1e-6)
    assert system.characteristic_period()[0] == pytest.approx(period, rel=1e-6)
    eig = np.linalg.eigvals(system.jacobian(0.0, point[None])[0])
    assert np.abs(eig.real).max() < 1e-12 and np.abs(eig.imag).max() == pytest.approx(frequency, rel=1e-12)


def test_duffing_without_linear_stiffness_declares_the_unit_amplitude_convention():
    # α = 0 (pure cubic) has no small-oscillation period; the declared time is 2π/√|β| by convention, finite.
    system = Duffing(linear_stiffness=np.zeros(2), cubic_stiffness=np.array([0.8, -0.5]))
    np.testing.assert_allclose(system.characteristic_period(), 2 * np.pi / np.sqrt([0.8, 0.5]), rtol=1e-12)


def test_duffing_double_well_minima_sit_where_the_trajectory_rests():
    # Damped motion started in the right well comes to rest at +√(−α/β) = √(1.3/0.7), not at −α/β or √(−2α/β).
    system = Duffing(damping=0.8, linear_stiffness=-1.3, cubic_stiffness=0.7)
    end = reference(system, [[1.0, 0.2]], np.linspace(0.0, 60.0, 601))[0, -1]
    assert end == pytest.approx([np.sqrt(1.3 / 0.7), 0.0], abs=1e-8)
    assert system.equilibria()["x+"][0] == pytest.approx(end, abs=1e-8)


# The declared period's signed error against the limit cycle's, as measured when the formula was fixed (the
# docstring quotes them): to 1 % of each error, so a wrong coefficient, log term or branch point cannot hide
# inside the 4 % the approximation is allowed. μ = 2 sits on the branch point (the small-μ series applies).
@pytest.mark.parametrize("mu, error", [(0.3, 1.3456e-05), (0.8, 7.4652e-4), (1.5, 9.9184e-3), (2.0, 2.9372e-2),
                                       (2.5, 2.4750e-2), (3.0, 1.8039e-2), (6.0, 4.6424e-3)])
def test_van_der_pol_declared_period_has_its_measured_error(mu, error):
    system = VanDerPol(mu=mu)
    declared, (period,) = system.characteristic_period()[0], system.limit_cycle()[1]
    assert declared / period - 1 == pytest.approx(error, rel=1e-2)


def test_van_der_pol_without_damping_is_the_harmonic_centre_beside_relaxation_cycles():
    # μ = 0 is a centre of period 2π (no limit cycle, so no amplitude) even in a batch whose other trajectory
    # takes the relaxation branch, whose μ^{-1/3}, ln μ / μ and 1/μ are infinite at 0 and must stay silent.
    system = VanDerPol(mu=np.array([0.0, 4.0]))
    np.testing.assert_allclose(system.characteristic_period(), [2 * np.pi, 10.311370], rtol=1e-7)
    amplitude, period = system.limit_cycle()
    assert np.isnan(amplitude[0]) and period[0] == 2 * np.pi


# The default run keeps one μ of each expansion; the costlier ones (seconds each) run in make test-slow.
@pytest.mark.parametrize("mu", [0.3, *(pytest.param(mu, marks=pytest.mark.slow) for mu in (1.0, 2.0, 20.0))])
def test_van_der_pol_period_matches_its_limit_cycle(mu):
    # The declared period is an approximation (small-μ series, Dorodnitsyn's expansion above μ = 2): within 4 %
    # of the limit cycle's period everywhere, and within 1e-3 where each expansion is good (the old μ^{−1/3}
    # coefficient 2.2338 instead of 3α = 7.014 was 28 % short at μ = 3).
    system = VanDerPol(mu=mu)
    # (at rtol 1e-5 for the stiff cycle: a minute at 1e-12; its period agrees with rtol 1e-7's to 5e-8)
    amplitude, period = system.limit_cycle(rtol=1e-5, atol=1e-7) if mu > 6 else system.limit_cycle()
    declared = system.characteristic_period()[0]
    assert declared == pytest.approx(period[0], rel=1e-3 if mu <= 0.5 or mu >= 15 else 0.04)
    if mu > 2:
        return  # the trajectory below costs seconds more each (minutes for the stiff cycle at rtol 1e-12)
    # The limit cycle's own amplitude and period, against a trajectory from another start (30 000 samples: the
    # crossings' interpolation error repeats every period and cancels in their differences).
    t = np.linspace(0.0, 30 * period[0], 30_001)
    x = reference(system, [[0.1, 0.0]], t)[0, :, 0]
    late = t > 15 * period[0]
    assert measured_period(t[late], x[late]) == pytest.approx(period[0], rel=1e-6)
    assert x[late].max() == pytest.approx(amplitude[0], rel=1e-4)  # the sampled maximum, Δt = T/1000


def kepler_orbits():
    config = EnsembleConfig.from_dict({
        "system": "kepler", "n_traj": 4, "dt": 0.01, "n_steps": 2, "seed": 11,
        "params": {"gravitational_parameter": 2.7, "semi_major_axis": 1.3, "eccentricity": {"uniform": [0.3, 0.7]},
                   "periapsis_angle": 2.2, "mean_anomaly": {"uniform": [0.5, 5.5]}},
    })
    return generate(config)


def test_kepler_period_and_periapsis_angle_are_those_of_the_orbit():
    # μ = 2.7, a = 1.3: T = 2π √(a³/μ) = 5.668, not 2π/√μ or 2π a^{3/2}. The periapsis angle asked for (2.2, at
    # four phases along the orbit) is the direction of the orbit's closest approach, read off a fine trajectory,
    # and so is the one the file records (read back from the states); the recorded eccentricity is
    # (r_max − r_min)/(r_max + r_min).
    orbits = kepler_orbits()
    params = orbits.params
    system = Kepler(gravitational_parameter=2.7)
    period = 2 * np.pi * np.sqrt(1.3**3 / 2.7)
    assert params["period"] == pytest.approx(np.full(4, period), rel=1e-12)
    assert system.characteristic_period(orbits.states[:, 0]) == pytest.approx(np.full(4, period), rel=1e-12)
    t = np.linspace(0.0, period, 200_001)
    s = solve(system, orbits.states[:, 0], t)
    r = np.hypot(s[..., 0], s[..., 1])
    # the orbit closes after one period, and not before
    assert np.abs(s[:, -1] - s[:, 0]).max() < 1e-9
    assert np.abs(s[:, 100_000] - s[:, 0]).max(axis=-1).min() > 0.1
    nearest = r.argmin(axis=1)
    x, y = s[np.arange(4), nearest, 0], s[np.arange(4), nearest, 1]
    angle = np.arctan2(y, x)
    # the grid resolves the periapsis to about 2π/2e5 of an orbit
    assert np.abs(np.angle(np.exp(1j * (angle - 2.2)))).max() < 1e-3
    np.testing.assert_allclose(params["periapsis_angle"], 2.2, rtol=1e-12)
    e = (r.max(axis=1) - r.min(axis=1)) / (r.max(axis=1) + r.min(axis=1))
    assert params["eccentricity"] == pytest.approx(e, abs=1e-8)
    assert params["semi_major_axis"] == pytest.approx(np.full(4, 1.3), rel=1e-12)
    assert params["energy"] == pytest.approx(np.full(4, -2.7 / (2 * 1.3)), rel=1e-12)  # negative: bound


def test_unbound_states_have_no_period():
    # ε = v²/2 − μ/r: at r = 1, μ = 2.7, speeds 2.4 and 2.6 give ε = 0.18 and 0.68 (unbound, 0 < ε < 1): no
    # period, a negative semi-major axis; 2.2 gives ε = −0.28 (bound).
    from simulators.kepler import elements

    out = elements(np.array([[1.0, 0.0, 0.0, 2.4], [1.0, 0.0, 0.0, 2.6], [1.0, 0.0, 0.0, 2.2]]), 2.7)
    np.testing.assert_allclose(out["energy"], [0.18, 0.68, -0.28], atol=1e-12)
    assert np.isnan(out["period"][:2]).all() and np.isfinite(out["period"][2])
    assert (out["semi_major_axis"][:2] < 0).all() and out["semi_major_axis"][2] > 0


@pytest.mark.parametrize("system, coordinate", [(Pendulum, "theta"), (Duffing, "x")])
def test_the_backbone_analysis_applies_to_free_undamped_motion_only(system, coordinate):
    # T(E) is the period of conservative motion: damped motion has none, nor does an observation without the
    # coordinate whose period is read.
    names = system.state_names
    assert system(damping=np.zeros(2)).physics_analysis(names) == "period"
    assert system(damping=np.array([0.0, 0.2])).physics_analysis(names) is None
    assert system(damping=np.zeros(2)).physics_analysis(tuple(n for n in names if n != coordinate)) is None


def test_separatrix_starts_have_an_infinite_period_and_unbounded_ones_none():
    # The pendulum from the bottom with v = 2ω0 (E = 2ω0², the separatrix): k'² = 0 exactly, T = ∞; just inside
    # (libration) and outside (rotation) it is finite. (From the top at rest, θ = float π lies 1.2e-16 inside.) A Duffing start beyond the
    # hump of a softening spring (β < 0) has no period: NaN.
    from simulators import Duffing

    pendulum = Pendulum(natural_frequency=1.7)
    periods = pendulum.period(np.array([[0.0, 3.4], [0.0, 3.4 * (1 - 1e-9)], [0.0, 3.4 * (1 + 1e-9)]]))
    assert np.isinf(periods[0]) and np.isfinite(periods[1:]).all()
    assert periods[1] > 20 and periods[2] > 10  # logarithmically long near the separatrix
    duffing = Duffing(linear_stiffness=1.0, cubic_stiffness=-1.0)
    assert np.isnan(duffing.period(np.array([[2.0, 0.0]])))[0]
    # nor does any start of a repulsive linear spring (α < 0, β = 0), whose elliptic parameter reads m = 1
    assert np.isnan(Duffing(linear_stiffness=-1.0, cubic_stiffness=0.0).period(np.array([[0.3, 0.1]])))[0]
    assert np.isfinite(duffing.period(np.array([[0.5, 0.0]])))[0]


@pytest.mark.parametrize("system, starts", [
    (Duffing(linear_stiffness=0.5, cubic_stiffness=0.8), [[0.0, 0.0], [0.4, -0.2], [1.1, 0.3]]),
    (Pendulum(natural_frequency=1.3), [[0.0, 0.0], [0.4, -0.2], [-2.5, 0.3]]),
    (Kepler(gravitational_parameter=2.7), [[1.0, 0.0, 0.0, 1.9], [0.0, 1.2, -1.1, 0.2], [-0.8, 0.3, 0.1, -1.6]]),
    (LinearOscillator(damping=0.3, natural_frequency=1.7), [[0.0, 0.0], [0.4, -0.2], [-2.5, 0.3]]),
], ids=["duffing", "pendulum", "kepler", "oscillator"])
def test_one_system_solves_many_starts(system, starts):
    # Scalar parameters and three starts (not two, which a state's two components could stand in for): the
    # closed form of each start, as solved alone and as DOP853 has it; rest at a centre stays there.
    starts = np.array(starts)
    t = np.linspace(0.0, 3.0, 31)
    together = solve(system, starts, t)
    assert together.shape == (3, 31, starts.shape[1])
    np.testing.assert_array_equal(system.exact(starts, t), together)  # the method itself broadcasts too
    for i in range(3):
        np.testing.assert_allclose(together[i], solve(system, starts[i:i + 1], t)[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(together, reference(system, starts, t), atol=1e-9)
    if not starts[0].any():
        assert np.abs(together[0]).max() == 0.0


def test_a_system_without_known_inputs_gives_an_empty_feature_block():
    # drive = "none": (n_traj, n_steps, 0), so the model's inputs are the states alone.
    t = np.linspace(0.0, 1.0, 11)
    assert LinearOscillator(damping=np.zeros(3)).drive_features(t, "none").shape == (3, 11, 0)


def test_duffing_period_inside_a_well_is_half_the_cycle_across_it():
    # α = −1.3, β = 0.7: released at rest at x = 1.2, inside the right well (the barrier is at 0), the orbit
    # returns after 2K/ω; at x = 2.0 it crosses both wells and takes 4K/ω. Both measured on the closed form.
    system = Duffing(linear_stiffness=-1.3, cubic_stiffness=0.7)
    starts = np.array([[1.2, 0.0], [2.0, 0.0]])
    periods = system.period(starts)
    t = np.linspace(0.0, 30.0, 300_001)
    x = system.broadcast(2).exact(starts, t)[:, :, 0]
    inside = upward_crossings(t, x[0] - x[0].mean())
    across = upward_crossings(t, x[1])
    assert periods[0] == pytest.approx(np.diff(inside).mean(), rel=1e-6)
    assert periods[1] == pytest.approx(np.diff(across).mean(), rel=1e-6)


def test_a_closed_form_refused_names_the_trajectory_that_has_a_drive():
    system = Duffing(linear_stiffness=1.3, cubic_stiffness=0.7, drive_amplitude=[0.0, 0.0, 0.4],
                     drive_frequency=1.1)
    with pytest.raises(ValueError, match=r"trajectory 2 has drive_amplitude = 0\.4"):
        system.exact([[1.0, 0.0]] * 3, [0.0, 1.0])
    with pytest.raises(TypeError, match=r"^cubic_stiffness must be a real number or an array of real numbers, "
                                        r"got 'stiff'$"):
        Duffing(cubic_stiffness="stiff")


def test_the_pendulums_period_at_rest_is_the_small_oscillation_one_without_warnings():
    # At rest k² = 0 (the rotation branch divides by it, silently); θ' = 2ω0 from the bottom is the separatrix.
    system = Pendulum(natural_frequency=1.5)
    periods = system.period([[0.0, 0.0], [0.0, 3.0]])
    assert periods[0] == pytest.approx(2 * np.pi / 1.5, rel=1e-12) and periods[1] == np.inf


def test_a_system_without_a_closed_form_says_which_method_to_use():
    from simulators import Lorenz63

    with pytest.raises(ValueError, match=r'^the lorenz63 system has no closed form; use method = "reference"$'):
        Lorenz63().exact([[1.0, 1.0, 1.0]], [0.0, 1.0])


def test_the_declared_libraries_hold_their_fields_with_the_terms_named():
    # Each parameter a model is given raises the degree by what the system declares for it (Duffing's α x: α
    # times a state monomial, one degree more; Lorenz's σ, ρ, β likewise); the terms keep their names, which
    # the identified equations print.
    from simulators import Lorenz63

    assert Duffing.library().degree == 3 and Duffing.library(("linear_stiffness",)).degree == 4
    assert Lorenz63.library().degree == 2 and Lorenz63.library(("sigma", "rho")).degree == 3
    assert Pendulum.library().degree == 1 and list(Pendulum.library().terms) == ["sin(theta)", "cos(theta)"]
    assert list(Kepler.library().terms) == ["x/r^3", "y/r^3"]
    theta = np.array([[0.3, 0.0], [2.0, 1.0]])
    terms = Pendulum.library().terms
    np.testing.assert_array_equal(terms["sin(theta)"](theta), np.sin([0.3, 2.0]))
    np.testing.assert_array_equal(terms["cos(theta)"](theta), np.cos([0.3, 2.0]))


def _flow_jacobian(system, s0, t_end, h=1e-6):
    """∂Φ_t/∂s0 of the system's own flow over [0, t_end] by central differences of certified solutions."""
    n = len(s0)
    starts = np.array([s0 + sign * h * np.eye(n)[j] for j in range(n) for sign in (1.0, -1.0)])
    ends = reference(system.broadcast(len(starts)), starts, np.array([0.0, t_end]))[:, -1]
    return ((ends[0::2] - ends[1::2]) / (2 * h)).T


def _omega(system, positions, momenta):
    names = list(system.state_names)
    omega = np.zeros((system.n_state, system.n_state))
    for q, p in zip(positions, momenta):
        omega[names.index(q), names.index(p)], omega[names.index(p), names.index(q)] = 1.0, -1.0
    return omega


@pytest.mark.parametrize("system, s0", [
    (LinearOscillator(natural_frequency=1.7, drive_amplitude=0.6, drive_frequency=2.3), [0.8, -0.5]),
    (Pendulum(natural_frequency=1.3, drive_amplitude=0.4, drive_frequency=0.7), [2.1, 0.6]),
    (Duffing(linear_stiffness=-1.0, cubic_stiffness=0.6, drive_amplitude=0.3, drive_frequency=1.1), [0.4, 0.9]),
    (Kepler(gravitational_parameter=1.7), [1.3, -0.2, 0.3, 1.1]),
], ids=["oscillator", "pendulum", "duffing", "kepler"])
def test_declared_positions_and_momenta_make_the_flow_symplectic(system, s0):
    # Measured on the flow itself, driven where the system can be: JᵀΩJ = Ω for the Jacobian of a finite-time
    # map, in the declared split (a split that swapped two names, or a flow off by a factor in q̇, fails).
    positions, momenta = system.canonical_coordinates()
    omega = _omega(system, positions, momenta)
    jac = _flow_jacobian(system, np.array(s0), 2.9)
    assert np.abs(jac - np.eye(len(s0))).max() > 0.5  # far from the identity
    np.testing.assert_allclose(jac.T @ omega @ jac, omega, atol=1e-6)


@pytest.mark.parametrize("system, s0", [
    (LinearOscillator(natural_frequency=1.7), [0.8, -0.5]),
    (Pendulum(natural_frequency=1.3), [2.1, 0.6]),
    (Duffing(linear_stiffness=-1.0, cubic_stiffness=0.6), [0.4, 0.9]),
    (Kepler(gravitational_parameter=1.7), [1.3, -0.2, 0.3, 1.1]),
], ids=["oscillator", "pendulum", "duffing", "kepler"])
def test_the_declared_energy_is_the_hamiltonian_of_the_declared_split(system, s0):
    # In one degree of freedom JᵀΩJ = Ω is det J = 1 whichever component is called the position; Hamilton's
    # equations with the system's own energy fix the orientation: q̇ = ∂E/∂p, ṗ = −∂E/∂q.
    positions, momenta = system.canonical_coordinates()
    names, s0, h = list(system.state_names), np.array(s0), 1e-6
    energy = system.invariants()["energy"]
    grad = np.array([(energy((s0 + h * e)[None, None]) - energy((s0 - h * e)[None, None]))[0, 0] / (2 * h)
                     for e in np.eye(len(s0))])
    rate = system.rhs(0.0, s0[None])[0]
    for q, p in zip(positions, momenta):
        i, j = names.index(q), names.index(p)
        assert rate[i] == pytest.approx(grad[j], rel=1e-8) and rate[j] == pytest.approx(-grad[i], rel=1e-8)


def test_friction_takes_the_split_away_and_its_flow_contracts_area():
    # η = 0.35 on one trajectory of two: that trajectory's map shrinks area by exp(−η t), so no split holds.
    system = Pendulum(damping=[0.0, 0.35], natural_frequency=1.3)
    np.testing.assert_array_equal(system.hamiltonian_trajectories(), [True, False])
    assert system.canonical_coordinates() is None
    assert system.take([0]).canonical_coordinates() == (("theta",), ("omega",))
    jac = _flow_jacobian(system.take([1]), np.array([1.2, 0.3]), 2.0)
    assert np.linalg.det(jac) == pytest.approx(np.exp(-0.35 * 2.0), rel=1e-6)
    assert Kepler().canonical_coordinates() == (("x", "y"), ("vx", "vy"))
    assert VanDerPol(mu=0.0).canonical_coordinates() is None and LotkaVolterra().canonical_coordinates() is None


def test_keplers_declared_rotations_commute_with_its_field_and_its_flow():
    # Rotating position and velocity by the same angle rotates the whole orbit (a wrong pair, say (x, vx),
    # fails both checks); the flow is Kepler's equation itself, the field the force law.
    system = Kepler(gravitational_parameter=1.7)
    assert system.ROTATIONS == (("x", "y"), ("vx", "vy"))
    names = list(system.state_names)
    angle = 0.83
    rot = np.eye(4)
    for a, b in system.ROTATIONS:
        i, j = names.index(a), names.index(b)
        rot[np.ix_([i, j], [i, j])] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    s0 = np.array([[1.3, -0.2, 0.3, 1.1], [0.4, 0.9, -1.2, 0.5]])
    np.testing.assert_allclose(system.rhs(0.0, s0 @ rot.T), system.rhs(0.0, s0) @ rot.T, rtol=1e-13)
    t = np.linspace(0.0, 7.0, 50)
    turned, orbit = system.exact(s0 @ rot.T, t), system.exact(s0, t)
    np.testing.assert_allclose(turned, orbit @ rot.T, atol=1e-12)
    assert np.abs(orbit @ rot.T - orbit).max() > 0.5  # the rotation is not a symmetry of the states themselves
