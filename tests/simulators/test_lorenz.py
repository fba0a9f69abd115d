"""Lorenz-63 against itself: its field's Jacobian against differences, its equilibria as zeros of the field, the
declared rotation period measured on an orbit leaving C+, SINDy's declared library holding the field; its largest
Lyapunov exponent 0.906 and the z-maxima spacing the docstring states (slow)."""

import numpy as np
import pytest

from simulators import EnsembleConfig, Lorenz63, generate, lyapunov_exponent, solve

#: Off the classic values, none equal to another or to 1.
ODD = dict(sigma=9.0, rho=31.0, beta=2.2)


def test_the_jacobian_is_the_derivative_of_the_field():
    system = Lorenz63(**ODD)
    state = np.array([[3.1, -4.2, 25.5]])
    h = 1e-6
    numeric = np.stack([(system.rhs(0.0, state + h * e) - system.rhs(0.0, state - h * e))[0] / (2 * h)
                        for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(system.jacobian(0.0, state)[0], numeric, atol=1e-7)
    np.testing.assert_allclose(system.rhs(0.0, state)[0], [9.0 * (-7.3), 3.1 * 5.5 + 4.2, 3.1 * -4.2 - 2.2 * 25.5])
    # a single state (n_state,) gets the field of the first parameter set, shaped like the state
    np.testing.assert_array_equal(system.rhs(0.0, state[0]), system.rhs(0.0, state)[0])


def test_the_equilibria_are_zeros_of_the_field_where_they_exist():
    system = Lorenz63(sigma=[10.0, 10.0], rho=[28.0, 0.5], beta=[8 / 3, 8 / 3])
    points = system.equilibria()
    for label in ("origin", "C+", "C-"):
        finite = np.flatnonzero(np.isfinite(points[label]).all(axis=1))
        assert np.abs(system.take(finite).rhs(0.0, points[label][finite])).max() < 1e-12
    np.testing.assert_allclose(points["C+"][0], [np.sqrt(72.0), np.sqrt(72.0), 27.0], rtol=1e-15)
    assert np.isnan(points["C+"][1]).all()  # ρ < 1: only the origin
    np.testing.assert_allclose(system.characteristic_period(), [0.61633058, 2 * np.pi], rtol=1e-7)


def test_the_declared_period_is_the_rotation_of_an_orbit_leaving_c_plus():
    # Released 1e-4 from C+ at ρ = 31, the orbit spirals out (Re λ = 0.1) at the declared rotation: once the
    # stable direction's part has decayed (λ = −14: after one turn), the zero crossings of x − x_C+ over the next
    # 7 turns (still linear) are T/2 apart.
    system = Lorenz63(**ODD)
    centre = system.equilibria()["C+"][0]
    period = system.characteristic_period()[0]
    t = np.linspace(0.0, 8 * period, 80_001)
    x = solve(system, [centre + [1e-4, 0.0, 0.0]], t, method="reference", rtol=1e-12, atol=1e-14)[0, :, 0]
    d = x - centre[0]
    i = np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]
    crossings = t[i] - d[i] * (t[i + 1] - t[i]) / (d[i + 1] - d[i])
    crossings = crossings[crossings > period]
    assert len(crossings) >= 12 and np.diff(crossings).mean() == pytest.approx(period / 2, rel=1e-3)
    # and the rotation is the complex root of C±'s characteristic polynomial
    # λ³ + (σ + β + 1) λ² + β (σ + ρ) λ + 2σβ(ρ − 1) = 0 (ω = 9.684 here)
    s, r, b = ODD["sigma"], ODD["rho"], ODD["beta"]
    roots = np.roots([1.0, s + b + 1, b * (s + r), 2 * s * b * (r - 1)])
    assert period == pytest.approx(2 * np.pi / np.abs(roots.imag).max(), rel=1e-12)


def test_an_ensemble_is_simulated_and_certified_until_the_orbits_part():
    tr = generate(EnsembleConfig.from_dict({"system": "lorenz63", "n_traj": 2, "dt": 0.025, "t_end": 20.0,
                                            "seed": 1, "method": "reference"}))
    certificate = tr.attrs["certificate"]
    assert not certificate["certified"] and 2.0 < certificate["certified_until"] < 20.0  # chaos: it parts
    assert tr.states.shape == (2, 801, 3) and np.isfinite(tr.states).all()


def test_sindys_declared_library_holds_the_field():
    import physrnn as pr

    tr = pr.simulate(system="lorenz63", n_traj=6, dt=0.002, t_end=4.0, seed=3, method="reference", **ODD)
    data = pr.StepData.from_trajectories(tr)
    model = pr.build_model("sindy", threshold=0.05).fit(data)
    found = {(s, f): w for c, s in enumerate(model.state_names_)
             for f, w in zip(model.feature_names_, model.coefficients_[:, c]) if w != 0}
    truth = {("x", "x"): -9.0, ("x", "y"): 9.0, ("y", "x"): 31.0, ("y", "y"): -1.0, ("y", "x z"): -1.0,
             ("z", "z"): -2.2, ("z", "x y"): 1.0}
    assert set(found) == set(truth)
    for key, value in truth.items():
        assert found[key] == pytest.approx(value, rel=1e-4), key


@pytest.mark.slow
def test_the_largest_lyapunov_exponent_and_the_z_maxima_spacing_at_the_classic_parameters():
    # λ1 = 0.9056 (Sprott's value) within three standard errors of the project's estimator over 1000 time units;
    # successive maxima of z 0.751 apart on average, 22 % more than the rotation period 0.616 about C±.
    system = Lorenz63()
    estimate = lyapunov_exponent(system, [[1.0, 1.0, 20.0]], duration=1000.0, transient=20.0)
    assert abs(estimate.exponent[0] - 0.9056) < 3 * estimate.stderr[0] and estimate.stderr[0] < 0.01
    t = np.arange(0.0, 1000.0, 0.001)
    z = solve(system, [[1.0, 1.0, 20.0]], t, method="reference", rtol=1e-10, atol=1e-10)[0, :, 2][t > 50]
    peaks = np.nonzero((z[1:-1] > z[:-2]) & (z[1:-1] > z[2:]))[0]
    assert np.diff(peaks).mean() * 1e-3 == pytest.approx(0.751, abs=0.005)


def test_rk23_data_are_scipys_defaults_one_trajectory_at_a_time_and_not_a_truth():
    # Gauthier et al. made their Lorenz data with solve_ivp(method="RK23") at its default tolerances: the
    # method reproduces that solve bit for bit per trajectory, and its error against the certified truth is
    # what such data carry (measured: 5.5e-4 of the state's size within 0.1 time units, 7.5e-3 within 1).
    from scipy.integrate import solve_ivp

    system = Lorenz63()
    starts = np.array([[17.67715816276679, 12.931379185960404, 43.91404334248268], [1.0, 1.0, 20.0]])
    t = np.arange(0, 121) * 0.025
    data = solve(system, starts, t, method="rk23")
    for i, s0 in enumerate(starts):
        direct = solve_ivp(lambda tt, y: system.rhs(tt, y[None])[0], (0.0, 3.0), s0, method="RK23", t_eval=t).y.T
        np.testing.assert_array_equal(data[i], direct)
    truth = solve(system, starts, t, method="reference")
    gap = np.abs(data - truth)[:, t <= 1.0].max() / np.abs(truth).max()
    assert 3e-3 < gap < 3e-2
    tr = generate(EnsembleConfig.from_dict({"system": "lorenz63", "n_traj": 2, "dt": 0.025, "n_steps": 41,
                                            "seed": 1, "method": "rk23"}))
    assert tr.method == "rk23" and tr.attrs["truth"] == "numerical"


PAPER_START = {"x0": 17.67715816276679, "y0": 12.931379185960404, "z0": 43.91404334248268}


def _segments(method, start, n_steps, n_traj=3, spacing=2.0):
    return generate(EnsembleConfig.from_dict({
        "system": "lorenz63", "n_traj": n_traj, "dt": 0.025, "n_steps": n_steps, "seed": 3, "method": method,
        "segments": {"start": start, "spacing": spacing}, "params": {**ODD, **PAPER_START}}))


def test_segments_are_cuts_of_one_orbit_as_one_solve_makes_it():
    # Gauthier et al.'s trials: one RK23 solve of the whole orbit, cut. Trajectory j is the orbit on
    # [0.5 + 2j, 0.5 + 2j + 1]; the solve's own points are SciPy's, bit for bit (the orbit is solved a segment's
    # length past the last segment, so no point is read from a step clipped to the end of the span).
    from scipy.integrate import solve_ivp

    system = Lorenz63(**ODD)
    train = _segments("rk23", 0.5, 41)
    t = 0.025 * np.arange(20 + 4 * 40 + 2 * 41)
    start = np.array(list(PAPER_START.values()))
    orbit = solve_ivp(lambda tt, y: system.rhs(tt, y[None])[0], (0.0, t[-1]), start, method="RK23", t_eval=t).y.T
    for j in range(3):
        np.testing.assert_array_equal(train.states[j], orbit[20 + 80 * j: 20 + 80 * j + 41])
    np.testing.assert_array_equal(train.time, 0.025 * np.arange(41))
    # each trajectory records its own first state as its initial state, and one parameter set
    np.testing.assert_array_equal(np.stack([train.params[k] for k in PAPER_START], axis=-1), train.states[:, 0])
    np.testing.assert_array_equal(train.params["rho"], [31.0] * 3)
    # a second ensemble of the same orbit (the test stretches: from 0.25 before each training stretch ends)
    # holds the same points where they overlap
    test = _segments("rk23", 1.25, 30)
    np.testing.assert_array_equal(test.states[:, :11], train.states[:, 30:])


def test_a_reference_segment_is_certified_from_its_own_first_state():
    # Each segment against a solve 100x looser from its own first state: over 1 time unit they agree to 1e-8
    # (the whole orbit, 9 time units long, would part by more); and the segment is the reference from there.
    tr = _segments("reference", 1.0, 41, spacing=4.0)
    assert tr.attrs["certificate"]["certified"] and tr.attrs["certificate"]["certified_until"] == 1.0
    again = solve(Lorenz63(**ODD), tr.states[:, 0], tr.time, method="reference")
    np.testing.assert_allclose(again, tr.states, rtol=0, atol=1e-8 * np.abs(tr.states).max())


@pytest.mark.parametrize("segments, match", [
    ({"start": 0.51, "spacing": 2.0}, "segments.start = 0.51 must be a whole number of steps"),
    ({"start": 0.5, "spacing": 0.0}, "segments.spacing = 0.0 must be a whole number of steps dt = 0.025, at least 0.025"),
    ({"start": 0.5}, "segments must be a table"),
])
def test_segments_are_refused_off_the_grid(segments, match):
    with pytest.raises(ValueError, match=match):
        EnsembleConfig.from_dict({"system": "lorenz63", "n_traj": 2, "dt": 0.025, "n_steps": 5,
                                  "segments": segments})


def test_segments_need_a_fixed_length():
    with pytest.raises(ValueError, match=r'^segments need a fixed length: give t_end or n_steps, not "auto"$'):
        EnsembleConfig.from_dict({"system": "eigen", "n_traj": 2, "dt": 0.1, "t_end": "auto",
                                  "segments": {"start": 0.0, "spacing": 1.0}})


def test_rk23_reads_the_time_of_a_driven_field():
    # A driven oscillator's field depends on t: RK23 at its default tolerances follows the closed form to its
    # own error (1e-3 here), which a field read at a fixed time would not.
    from simulators import LinearOscillator

    osc = LinearOscillator(damping=0.2, drive_amplitude=1.5, drive_frequency=1.3)
    t = np.arange(0, 201) * 0.05
    start = np.array([[0.5, 0.0]])
    gap = np.abs(solve(osc, start, t, method="rk23") - solve(osc, start, t, method="exact")).max()
    assert 1e-6 < gap < 1e-2


def test_segments_of_a_driven_system_are_refused():
    with pytest.raises(ValueError, match="the oscillator system is driven"):
        EnsembleConfig.from_dict({"system": "oscillator", "n_traj": 2, "dt": 0.1, "n_steps": 5,
                                  "params": {"drive_amplitude": 0.5}, "segments": {"start": 0.0, "spacing": 1.0}})
    # undriven, the same system may be cut
    EnsembleConfig.from_dict({"system": "oscillator", "n_traj": 2, "dt": 0.1, "n_steps": 5,
                              "params": {"drive_amplitude": 0.0}, "segments": {"start": 0.0, "spacing": 1.0}})
