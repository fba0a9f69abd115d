"""The nonlinear systems: exact solutions against DOP853 in every regime and at the traps, invariants, periods,
integrator orders, Jacobians, and the reference truth's certificate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import ellipj

from simulators import (Duffing, EnsembleConfig, Kepler, KeplerParams, LinearOscillator, ParamSpec,
                        Pendulum, VanDerPol, generate, get_system, read_trajectories, solve, system_names,
                        write_trajectories)
from simulators.elliptic import complete_k, incomplete_f, jacobi
from simulators.integrate import flow_jacobian
from simulators.kepler import elements, solve_kepler


def reference_pair(system, s0, t):
    """DOP853 at rtol 1e-12 (the oracle) and at 1e-10 (how far a solver that good can be off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tight = solve(system, s0, t, method="reference", rtol=1e-12, atol=1e-14)
        loose = solve(system, s0, t, method="reference", rtol=1e-10, atol=1e-12)
    return tight, loose


def assert_exact_matches_reference(system, s0, t, *, atol):
    """The closed form agrees with DOP853 (rtol 1e-12) to ``atol``, and never worse than DOP853 at rtol 1e-10
    agrees with it: near a separatrix the flow amplifies every error by orders of magnitude, and there the
    integrators' own spread is the only honest yardstick (the closed form is far closer to the tight run than
    the loose run is, when it is right)."""
    exact = solve(system, s0, t)
    tight, loose = reference_pair(system, s0, t)
    err = np.abs(exact - tight).max(axis=(1, 2))
    spread = np.abs(loose - tight).max(axis=(1, 2))
    assert (err <= np.maximum(atol, spread)).all(), (err, spread)
    return exact


# ------------------------------------------------------------------------------------------------ elliptic
@pytest.mark.parametrize("mc", [0.9, 0.5, 1e-3, 1e-9, 2.5e-13, 1e-20, 0.0])
def test_jacobi_identities_hold_up_to_the_separatrix(mc):
    m = 1.0 - mc
    K = complete_k(mc) if mc > 0 else 30.0
    u = np.linspace(-3 * K, 5 * K, 401)
    sn, cn, dn = jacobi(u, m, mc)
    # sn² + cn² = 1 and dn² + m sn² = 1 to rounding; mc directly: dn² − mc sn²... = cn² + mc sn².
    assert np.abs(sn**2 + cn**2 - 1).max() < 1e-14
    assert np.abs(dn**2 - (cn**2 + mc * sn**2)).max() < 1e-14
    if mc > 0:  # the period 4K and sn(K) = 1
        assert np.abs(np.array(jacobi(u + 4 * K, m, mc)) - np.array([sn, cn, dn])).max() < 1e-12
        assert jacobi(K, m, mc)[0] == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("m", [0.0, 0.3, 0.7, 0.99])
def test_jacobi_matches_scipy_where_scipy_is_accurate(m):
    u = np.linspace(-20, 20, 301)
    ours = np.array(jacobi(u, m, 1 - m))
    theirs = np.array(ellipj(u, m)[:3])
    assert np.abs(ours - theirs).max() < 1e-13  # both to a few ulp of the argument 20


def test_jacobi_beats_scipy_near_m_equal_one():
    # mc = 2.5e-13 (the pendulum at θ0 = π − 1e-6). At u = K, sn = 1 and cn = 0, dn = k' exactly; SciPy's
    # ellipj(K, m) misses cn by ~1e-11 (its expansion about m = 1 beyond its range), ours by < 1e-15.
    mc = 2.5e-13
    K = complete_k(mc)
    sn, cn, dn = jacobi(K, 1 - mc, mc)
    assert abs(cn) < 1e-15 and abs(dn - np.sqrt(mc)) < 1e-15 * np.sqrt(mc) * 10
    assert abs(ellipj(K, 1 - mc)[1]) > 1e-13  # the trap is real


def test_incomplete_integral_inverts_jacobi():
    for mc in (0.5, 1e-6):
        K = complete_k(mc)
        u = np.linspace(-1.99 * K, 1.99 * K, 101)
        sn, cn, dn = jacobi(u, 1 - mc, mc)
        assert np.abs(incomplete_f(sn, cn, dn**2, mc) - u).max() < 1e-12 * K / np.sqrt(mc) ** 0.5


# ------------------------------------------------------------------------------------------------ pendulum
def test_pendulum_libration_rotation_and_wrapped_starts_match_dop853():
    p = Pendulum(natural_frequency=1.3)
    s0 = np.array([[1.0, 0.0], [2.5, 0.0], [0.3, -1.2], [-3.0, 0.4], [7.0, 0.5], [1.0, 3.0], [-2.0, -4.0],
                   [0.0, 0.0]])
    t = np.arange(0, 40, 0.1)
    # Regular orbits over ~8 periods: DOP853 at rtol 1e-12 is good to a few 1e-12 per period.
    exact = assert_exact_matches_reference(p, s0, t, atol=5e-11)
    assert exact[5, -1, 0] > 50  # rotation: θ unwrapped, not folded into (−π, π]


@pytest.mark.parametrize("s0", [[np.pi - 1e-6, 0.0], [0.0, 2 * (1 + 1e-9)], [0.0, -2 * (1 + 1e-6)]],
                         ids=["theta0=pi-1e-6", "rotation-1e-9-above", "rotation-1e-6-above-backwards"])
def test_pendulum_at_the_separatrix_traps(s0):
    p = Pendulum(natural_frequency=1.0)
    s0 = np.array([s0])
    period = p.period(s0)[0]
    t = np.linspace(0, period, 401)
    exact = assert_exact_matches_reference(p, s0, t, atol=1e-11)
    # One period returns to the start (θ advanced by 2π in rotation): the period formula against the orbit.
    shift = 0.0 if s0[0, 0] else np.sign(s0[0, 1]) * 2 * np.pi
    assert np.abs(exact[0, -1] - s0[0] - [shift, 0]).max() < 1e-9


def test_pendulum_energy_is_constant_along_the_exact_solution():
    p = Pendulum(natural_frequency=0.7)
    s0 = np.array([[1.0, 0.0], [np.pi - 1e-6, 0.0], [0.2, 3.0], [-1.0, -0.5]])
    e = p.broadcast(4).energy(solve(p, s0, np.linspace(0, 200, 2001)))
    assert (np.abs(e - e[:, :1]).max(axis=1) / e[:, 0] < 1e-12).all()


def test_pendulum_period_against_measured_periods_and_small_amplitude_limit():
    p = Pendulum(natural_frequency=2.0)
    s0 = np.array([[0.5, 0.0], [2.0, 0.0], [0.0, 5.0]])
    T = p.broadcast(3).period(s0)
    # Measured: the reference integrator returns to the start after T (θ + 2π for the rotating one).
    for i in range(3):
        tight, _ = reference_pair(p, s0[i:i + 1], np.array([0.0, T[i]]))
        shift = [2 * np.pi if i == 2 else 0.0, 0.0]
        assert np.abs(tight[0, -1] - s0[i] - shift).max() < 1e-9
    # Small amplitude: T = (2π/ω0)(1 + θ0²/16 + ...).
    small = p.period(np.array([[1e-3, 0.0]]))[0]
    assert small == pytest.approx(np.pi * (1 + 1e-6 / 16), rel=1e-12)


def test_damped_or_driven_pendulum_has_no_closed_form():
    with pytest.raises(ValueError, match=r"trajectory 0 has damping = 0\.1.*use method = \"reference\""):
        solve(Pendulum(damping=0.1), [[1.0, 0.0]], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"drive_amplitude = 0\.2"):
        solve(Pendulum(drive_amplitude=0.2, drive_frequency=1.0), [[1.0, 0.0]], [0.0, 1.0])


# ------------------------------------------------------------------------------------------------ Duffing
DUFFING = [  # (α, β, x0, v0): hardening cn, pure cubic, harmonic, softening sn, double well dn and across
    (1.0, 1.0, 1.0, 0.0), (1.0, 1.0, 0.3, -2.0), (0.0, 2.0, 1.0, 0.5), (1.0, 0.0, 0.5, 0.5),
    (1.0, -1.0, 0.5, 0.3), (1.0, -1.0, -0.9, 0.0), (2.0, -0.5, 1.5, -0.5), (1.0, -1.0, 0.0, 0.707),
    (-1.0, 1.0, 1.2, 0.0), (-1.0, 1.0, -0.7, 0.2), (-1.0, 1.0, 1.0, 0.1), (-1.0, 1.0, 1.5, 0.3),
    (-1.0, 1.0, 0.0, 0.5), (-1.0, 1.0, 1.414, 0.0), (-1.0, 1.0, 1.4143, 0.0), (-1.0, 1.0, 1.0, 0.0),
]


def test_duffing_in_every_regime_matches_dop853_and_is_periodic():
    a, b, x0, v0 = map(np.array, zip(*DUFFING))
    d = Duffing(linear_stiffness=a, cubic_stiffness=b)
    s0 = np.stack([x0, v0], axis=1)
    T = d.period(s0)
    assert np.isfinite(T).all()
    for i in range(len(DUFFING)):  # two periods each; near the double well's separatrix (x0 = √2) the spread rules
        di = d.take(slice(i, i + 1))
        exact = assert_exact_matches_reference(di, s0[i:i + 1], np.linspace(0, 2 * T[i], 301), atol=2e-11)
        assert np.abs(exact[0, -1] - s0[i]).max() < 1e-10  # the period formula: back at the start after 2T
        e = di.energy(exact)
        assert np.abs(e - e[:, :1]).max() <= 1e-12 * max(abs(e[0, 0]), 1e-3)


def test_duffing_backbone_small_amplitude_and_refusals():
    d = Duffing(linear_stiffness=1.0, cubic_stiffness=1.0)
    # Backbone: ω ≈ √α (1 + 3βA²/(8α)) for small A.
    A = 1e-3
    T = d.period(np.array([[A, 0.0]]))[0]
    assert 2 * np.pi / T == pytest.approx(1 + 3 * A**2 / 8, rel=1e-11)
    with pytest.raises(ValueError, match=r"^the duffing start \[2\.0, 0\.0\] \(α = 1\.3, β = -0\.7\) is unbounded or "
                                         r"outside a well: no closed form; use method = \"reference\"$"):
        solve(Duffing(linear_stiffness=[1.0, 1.3], cubic_stiffness=[1.0, -0.7]), [[0.5, 0.0], [2.0, 0.0]], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"damping = 0\.3"):
        solve(Duffing(damping=0.3), [[1.0, 0.0]], [0.0, 1.0])


# ------------------------------------------------------------------------------------------------ Kepler
def kepler_orbits(e):
    params = KeplerParams(eccentricity=ParamSpec("values", tuple(e)),
                          mean_anomaly=ParamSpec("values", tuple(np.linspace(0.1, 6.0, len(e)))))
    return params.sample(len(e), seed=0)


def test_kepler_matches_dop853_up_to_e_095_and_returns_after_a_period():
    k, s0 = kepler_orbits([0.0, 0.3, 0.7, 0.95])
    el = elements(s0, 1.0)
    assert el["eccentricity"] == pytest.approx([0.0, 0.3, 0.7, 0.95], abs=1e-14)
    t = np.linspace(0, 2 * 2 * np.pi, 801)
    exact = assert_exact_matches_reference(k, s0, t, atol=2e-11)
    assert np.abs(exact[:, -1] - s0).max() < 1e-12  # two periods of 2π √(a³/μ) = 2π
    inv = k.invariants()
    for name in ("energy", "angular_momentum", "lrl_x", "lrl_y"):
        v = inv[name](exact)
        assert np.abs(v - v[:, :1]).max() < 1e-12  # relative to μ = a = 1: every invariant is O(1)


def test_kepler_equation_solver_and_unbound_refusal():
    M = np.linspace(-20, 20, 2001)
    for e in (0.0, 0.5, 0.95, 0.999):
        E = solve_kepler(M, e)
        assert np.abs(E - e * np.sin(E) - M).max() < 1e-13
    with pytest.raises(ValueError, match="not bound"):
        solve(Kepler(), [[1.0, 0.0, 0.0, 1.5]], [0.0, 1.0])


# ------------------------------------------------------------------------------------------------ reference truth
def test_van_der_pol_limit_cycle_known_values():
    # μ = 1: amplitude 2.00862 and period 6.66329 (e.g. Strogatz, Nonlinear Dynamics and Chaos, §7.5 and the
    # standard numerical value). Late orbit from a start off the cycle.
    v = VanDerPol(mu=1.0)
    t = np.arange(0, 200, 0.01)
    x = solve(v, [[0.1, 0.0]], t, method="reference")[0, :, 0]
    late = t > 150
    assert x[late].max() == pytest.approx(2.00862, abs=2e-5)
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0) & late[1:])
    crossings = t[up] - x[up] * (t[up + 1] - t[up]) / (x[up + 1] - x[up])
    assert np.diff(crossings).mean() == pytest.approx(6.66329, abs=1e-3)  # linear interpolation of crossings


def test_stiff_van_der_pol_uses_an_implicit_reference():
    assert VanDerPol(mu=50.0).reference_method() == "Radau"
    assert VanDerPol(mu=1.0).reference_method() == "DOP853"


def test_reference_files_carry_a_certificate_and_exact_files_say_so(tmp_path):
    lv = generate(EnsembleConfig.from_dict(dict(system="lotka-volterra", n_traj=3, dt=0.1, t_end=30.0,
                                                method="reference")))
    cert = lv.attrs["certificate"]
    write_trajectories(tmp_path / "lv.h5", lv)
    assert read_trajectories(tmp_path / "lv.h5").attrs["certificate"] == cert  # read back as written
    assert lv.attrs["truth"] == "reference" and cert["certified"] and cert["certified_until"] == 30.0
    assert 0 < cert["max_difference"] < cert["bound"]
    assert cert["invariant_drift"]["V"] < 1e-10  # V conserved; DOP853 at 1e-12 drifts by ~1e-12 over 5 periods
    chaos = generate(EnsembleConfig.from_dict(dict(
        system="duffing", n_traj=1, dt=0.1, t_end=300.0, method="reference",
        params=dict(damping=0.3, linear_stiffness=-1.0, cubic_stiffness=1.0, drive_amplitude=0.5,
                    drive_frequency=1.2, x0=0.5, v0=0.0))))
    # Chaos: the two tolerances part after some Lyapunov times, and the file says until when they agree.
    assert not chaos.attrs["certificate"]["certified"]
    assert 5 < chaos.attrs["certificate"]["certified_until"] < 300
    exact = generate(EnsembleConfig.from_dict(dict(system="pendulum", n_traj=2, dt=0.1, t_end=1.0)))
    assert exact.attrs["truth"] == "exact" and "certificate" not in exact.attrs


def test_a_reference_kepler_file_certifies_both_invariants():
    # Kepler has a closed form, but a reference run is allowed; its certificate records the drift of every
    # invariant (the energy, negative here, the angular momentum and the LRL vector) at DOP853's level over 3 orbits.
    orbit = generate(EnsembleConfig.from_dict(dict(system="kepler", n_traj=2, dt=0.05, t_end=20.0, method="reference",
                                                   params=dict(gravitational_parameter=2.7, semi_major_axis=1.3))))
    drift = orbit.attrs["certificate"]["invariant_drift"]
    assert set(drift) == {"energy", "angular_momentum", "lrl_x", "lrl_y"}
    assert all(0 < value < 1e-9 for value in drift.values()), drift


# ------------------------------------------------------------------------------------------------ every system
def free_systems():
    """One free, bounded ensemble per registered system with a start for each (drawn from its defaults)."""
    out = {}
    for name in system_names():
        cls = get_system(name)
        system, s0 = cls.Params().sample(3, seed=4)
        out[name] = (system, s0)
    return out


@pytest.mark.parametrize("name", system_names())
def test_jacobian_matches_finite_differences(name):
    system, s0 = free_systems()[name]
    h = 1e-6
    n = s0.shape[1]
    fd = np.stack([(system.rhs(0.3, s0 + h * np.eye(n)[j]) - system.rhs(0.3, s0 - h * np.eye(n)[j])) / (2 * h)
                   for j in range(n)], axis=-1)
    assert np.abs(system.jacobian(0.3, s0) - fd).max() < 1e-7  # central differences: O(h²) ≈ 1e-12, noise ~1e-10


def test_flow_jacobian_is_expm_for_the_oscillator_and_the_derivative_of_the_closed_form():
    from scipy.linalg import expm
    osc = LinearOscillator(damping=0.3, natural_frequency=1.2)
    _, J = flow_jacobian(osc, [[0.3, -0.2]], 0.0, 0.1)
    assert np.abs(J[0] - expm(osc.jacobian(0.0, np.zeros((1, 2)))[0] * 0.1)).max() < 1e-12
    p = Pendulum(natural_frequency=1.0)
    s0 = np.array([[2.0, 0.3]])
    end, J = flow_jacobian(p, s0, 0.0, 0.5)
    h = 1e-6
    fd = np.stack([(solve(p, s0 + h * np.eye(2)[j], [0.0, 0.5])[0, -1] - solve(p, s0 - h * np.eye(2)[j],
                                                                              [0.0, 0.5])[0, -1]) / (2 * h)
                   for j in range(2)], axis=-1)
    assert np.abs(end - solve(p, s0, [0.0, 0.5])[:, -1]).max() < 1e-12
    assert np.abs(J[0] - fd).max() < 1e-8


@pytest.mark.parametrize("name", ["pendulum", "duffing", "kepler", "vanderpol", "lotka-volterra"])
def test_euler_and_rk4_converge_at_orders_one_and_four(name):
    system, s0 = free_systems()[name]
    t = np.linspace(0, 2.0, 3)
    truth = solve(system, s0, t, method="exact" if name in ("pendulum", "duffing", "kepler") else "reference")
    for method, order, steps in (("euler", 1, (200, 400)), ("rk4", 4, (20, 40))):
        err = [np.abs(solve(system, s0, t, method=method, substeps=k) - truth).max() for k in steps]
        assert np.log2(err[0] / err[1]) == pytest.approx(order, abs=0.15)
