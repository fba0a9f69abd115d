"""Physics read back from rollouts, groups of test trajectories, and rollout scoring: known answers."""

import numpy as np
import pytest

from physrnn.analysis import analyse, applicable, groups_of, headline, rayleigh_error_trace
from physrnn.evaluation import evaluate_rollout
from simulators.trajectory_file import fingerprint
from physrnn.metrics import METRICS, invariant_error
from simulators import EigenFlow, LinearOscillator, random_symmetric, solve, steady_state_response
from simulators.trajectory_file import Trajectories, write_trajectories


def _params(**values):
    """Per-trajectory parameters shaped as a trajectory file holds them (drive terms as a trailing axis)."""
    n = len(values["damping"])
    out = {"damping": np.asarray(values["damping"], float),
           "natural_frequency": np.asarray(values.get("natural_frequency", np.ones(n)), float)}
    for key in ("drive_amplitude", "drive_frequency", "drive_phase"):
        out[key] = np.asarray(values.get(key, np.zeros(n)), float).reshape(n, 1)
    return out


def _osc(p):
    """The oscillator ensemble of those parameters (what the analyses ask for their physics)."""
    return LinearOscillator(**p)


def test_groups_by_regime_training_range_and_value():
    # ζ = 1 up to rounding (1e-12) is critical; ζ = 1 ± 1e-6 is a real, if slight, departure from it.
    p = _params(damping=[0.2, 2.0, 3.0, 0.5, 2.0 * (1 + 1e-12), 2.0 * (1 + 1e-6), 2.0 * (1 - 1e-6)])
    groups = groups_of("regime", p, system=_osc(p))
    assert {k: v.tolist() for k, v in groups.items()} == {"under-damped (ζ < 1)": [0, 3, 6],
                                                          "critically damped (ζ = 1)": [1, 4],
                                                          "over-damped (ζ > 1)": [2, 5]}
    train = _params(damping=[0.1, 0.4, 0.25], drive_frequency=[0.6, 1.4, 1.0])
    test = _params(damping=[0.2, 0.5, 0.3, 0.4], drive_frequency=[1.0, 1.0, 1.6, 1.4])
    inside = groups_of("training_range", test, train_params=train, parameters=("damping", "drive_frequency"))
    # η = 0.5 and Ω = 1.6 are beyond the training box; its end points (η = 0.4, Ω = 1.4) are inside.
    assert inside["inside the training range"].tolist() == [0, 3]
    assert inside["outside the training range"].tolist() == [1, 2]
    # A two-term drive: each term's frequency has its own range ([0.5, 0.7] and [2.0, 2.5]); Ω1 = 0.8 is outside
    # its own although below the other term's.
    two = {"drive_frequency": np.array([[0.5, 2.0], [0.7, 2.5]])}
    probe = {"drive_frequency": np.array([[0.6, 2.2], [0.8, 2.2], [0.6, 2.6]])}
    terms = groups_of("training_range", probe, train_params=two, parameters=("drive_frequency",))
    assert terms["inside the training range"].tolist() == [0]
    by_value = groups_of("damping", _params(damping=[0.2, 2.0, 0.2, 3.0]))
    assert {k: v.tolist() for k, v in by_value.items()} == {"damping = 0.2": [0, 2], "damping = 2": [1],
                                                            "damping = 3": [3]}
    many = groups_of("damping", _params(damping=np.linspace(0, 1, 20)))
    assert len(many) == 4 and sum(len(v) for v in many.values()) == 20  # > 12 values: four equal bins
    # Bins are [lo, hi) but the last [lo, hi]: a value on an inner edge (0.25 = 4/16) opens the bin above it.
    edges = groups_of("damping", _params(damping=np.linspace(0, 1, 17)))
    assert {k: v.tolist() for k, v in edges.items()} == {
        "damping in [0, 0.25)": [0, 1, 2, 3], "damping in [0.25, 0.5)": [4, 5, 6, 7],
        "damping in [0.5, 0.75)": [8, 9, 10, 11], "damping in [0.75, 1]": [12, 13, 14, 15, 16]}
    assert groups_of(None, p) == {}
    with pytest.raises(ValueError, match=r"cannot group by 'colour'.*use regime, training_range"):
        groups_of("colour", p, system=_osc(p))
    with pytest.raises(ValueError, match=r"needs parameter-aware models"):
        groups_of("training_range", p, train_params=p)


def test_characteristic_period():
    p = _params(damping=[0.0, 0.6, 3.0, 0.2], drive_amplitude=[0, 0, 0, 0.5], drive_frequency=[0, 0, 0, 1.3])
    expected = [2 * np.pi, 2 * np.pi / np.sqrt(1 - 0.3**2), 2 * np.pi, 2 * np.pi / 1.3]
    np.testing.assert_allclose(_osc(p).characteristic_period(), expected, rtol=1e-15)
    assert EigenFlow(matrix=np.eye(3)).characteristic_period() is None


def test_resonance_of_the_analytic_steady_state_is_exact():
    # x = F0 gain cos(Ωt + φ − lag) exactly: the fit must return the analytic amplitude and lag to rounding.
    om, phase = np.array([0.7, 1.0, 1.6]), np.array([0.0, 0.4, -1.0])
    p = _params(damping=[0.2, 0.2, 0.5], drive_amplitude=[0.5, 0.5, -0.3], drive_frequency=om, drive_phase=phase)
    gain, lag = steady_state_response(p["damping"], 1.0, om)
    t = np.arange(0, 60, 0.05)
    amp = p["drive_amplitude"][:, 0]
    x = (amp * gain)[:, None] * np.cos(om[:, None] * t + phase[:, None] - lag[:, None])
    figures = analyse("resonance", x[..., None], t, _osc(p), steady_fraction=0.5)
    # 1e-12: a 3-column least-squares fit on ~600 samples of an exact sinusoid (cond ~ 1) loses a few ulp.
    np.testing.assert_allclose(figures["amplitude_rel_error"], 0, atol=1e-12)
    np.testing.assert_allclose(figures["phase_error"], 0, atol=1e-12)  # also for the negative amplitude (π shift)
    # Half the amplitude: a relative error of exactly 0.5, and the phase untouched.
    half = analyse("resonance", 0.5 * x[..., None], t, _osc(p), steady_fraction=0.5)
    np.testing.assert_allclose(half["amplitude_rel_error"], 0.5, atol=1e-12)
    # Lagging by a further 0.3 rad, or 2.9 rad (wrapped: the error is the angle between, at most π).
    for extra in (0.3, 2.9):
        late = (amp * gain)[:, None] * np.cos(om[:, None] * t + phase[:, None] - lag[:, None] - extra)
        shifted = analyse("resonance", late[..., None], t, _osc(p), steady_fraction=0.5)
        np.testing.assert_allclose(shifted["phase_error"], extra, atol=1e-12)


def test_resonance_reads_the_steady_state_after_the_transient():
    # From rest, the transient decays as e^{-ηt/2}: by t = 100 it is e^{-10} ≈ 5e-5 of the response, so a fit on
    # the last half of [0, 200] reads the analytic amplitude to ~1e-4; a fit over the whole series, transient
    # included, is off by several percent.
    osc = LinearOscillator(damping=0.2, drive_amplitude=0.5, drive_frequency=[0.8, 1.3])
    t = np.arange(0, 200, 0.05)
    x = solve(osc, np.zeros((2, 2)), t)
    late = analyse("resonance", x, t, osc, steady_fraction=0.5)
    assert late["amplitude_rel_error"].max() < 3e-4
    whole = analyse("resonance", x, t, osc, steady_fraction=1.0)
    assert whole["amplitude_rel_error"].max() > 1e-2


def test_decay_recovers_the_damping_ratio_of_the_closed_form():
    p = _params(damping=[0.1, 0.4, 2.0, 3.0])
    t = np.arange(0, 40, 0.01)
    x = solve(LinearOscillator(damping=p["damping"]), np.tile([1.0, 0.0], (4, 1)), t)
    figures = analyse("decay", x, t, _osc(p), steady_fraction=1.0)
    zeta = p["damping"] / 2
    # Under-damped: ζ to 2e-9 (parabolic peak interpolation on dt = 0.01 is the estimator's own error: measured
    # 2.9e-10 and 1.4e-10; reading the sample maxima alone would be off by ~1e-7, see test_metrics);
    # critical and over-damped motion has no maxima: NaN, and `applicable` leaves them out.
    np.testing.assert_allclose(figures["damping_ratio"][:2], zeta[:2], rtol=0, atol=2e-9)
    assert np.isnan(figures["damping_ratio"][2:]).all()
    applies = applicable("decay", figures)
    assert applies.tolist() == [True, True, False, False]
    assert headline("decay", figures, applies)["damping_ratio_error"] < 2e-9  # the median of the two above


def test_eigen_analysis_and_convergence_trace():
    a = random_symmetric(5, seed=3)
    w, v = np.linalg.eigh(a)
    t = np.arange(0, 40, 0.05)
    x0 = np.random.default_rng(0).standard_normal((3, 5))
    x0 /= np.linalg.norm(x0, axis=1, keepdims=True)
    states = solve(EigenFlow(matrix=a), x0, t)
    figures = analyse("eigen", states, t, EigenFlow(matrix=np.broadcast_to(a, (3, 5, 5))), steady_fraction=1.0)
    # The exact flow from a unit start ends on the top eigenvector (t = 40 ≫ 1/gap here), norm conserved.
    assert (figures["eigenvalue_rel_error"] < 1e-12).all() and (figures["norm_drift"] < 1e-12).all()
    trace = rayleigh_error_trace(states, a)
    assert trace[:, 0].min() > 1e-3 and trace[:, -1].max() < 1e-12  # converges from a real distance
    # A rollout ending on the second eigenvector has eigenvalue error (λ1 − λ2)/|λ1| exactly.
    wrong = np.broadcast_to(v[:, -2], (3, 2, 5))
    second = analyse("eigen", wrong, t[:2], EigenFlow(matrix=a), steady_fraction=1.0)
    np.testing.assert_allclose(second["eigenvalue_rel_error"], (w[-1] - w[-2]) / abs(w[-1]), rtol=1e-12)
    np.testing.assert_allclose(second["eigenvector_angle"], np.pi / 2, rtol=1e-12)


def test_energy_error_known_scaling():
    osc = LinearOscillator(damping=0.1, natural_frequency=1.5)
    t = np.linspace(0, 20, 401)
    true = solve(osc, [[1.0, 0.0], [0.0, 2.0]], t)
    energy = osc.broadcast(2).invariants()["energy"]
    assert (invariant_error(true=true, pred=true, invariant=energy) == 0).all()
    # States scaled by 1 + ε have energy (1 + ε)² E: the largest error is at the largest energy, 2ε + ε².
    eps = 1e-3
    np.testing.assert_allclose(invariant_error(true=true, pred=(1 + eps) * true, invariant=energy), 2 * eps + eps**2, rtol=1e-12)
    # The energy needs the whole state: the metric does not apply to the position alone.
    assert METRICS["energy_error"].applies(osc, ("x", "v")) and not METRICS["energy_error"].applies(osc, ("x",))


def test_evaluate_rollout_per_group(tmp_path):
    osc = LinearOscillator(damping=[0.2, 0.2, 3.0])
    t = np.arange(0, 30, 0.05)
    states = solve(osc, np.tile([1.0, 0.0], (3, 1)), t)
    params = {k: np.asarray(v) for k, v in osc.params().items()} | {"x0": np.ones(3), "v0": np.zeros(3)}
    truth = Trajectories(system="oscillator", time=t, states=states, params=params, state_names=("x", "v"),
                         state_units=("L", "L/T"), method="exact")
    pred = states.copy()
    pred[1, 10:, 0] += 0.01  # one under-damped trajectory off by a constant 0.01 in x after the context
    rolled = Trajectories(system="oscillator", time=t, states=pred,
                          params=params | {"diverged": np.zeros(3, bool), "diverged_at": np.full(3, -1),
                                           "source_trajectory": np.arange(3)},
                          state_names=("x", "v"), state_units=("L", "L/T"), method="rollout:test",
                          attrs={"context": 10, "truth_file": "", "model_file": "",
                                 "truth_fingerprint": fingerprint(truth)})
    path = write_trajectories(tmp_path / "r.h5", rolled)
    groups = groups_of("regime", params, system=osc)
    out = evaluate_rollout(str(path), truth=truth, groups=groups).to_dict()
    under, over = out["groups"]["under-damped (ζ < 1)"], out["groups"]["over-damped (ζ > 1)"]
    assert under["n_traj"] == 2 and over["n_traj"] == 1
    np.testing.assert_allclose(under["rmse"], [0.005, 0.0], rtol=1e-12)  # (0.01 + 0)/2 over the two
    assert over["rmse"] == [0.0, 0.0]
    # Over-damped motion has no maxima: no damping ratio is read from that group at all.
    assert out["physics"]["kind"] == "decay" and "physics" in under and "physics" not in over
    # The exact solution's recovered ζ is the estimator floor: 6.4e-10 measured on this Δt = 0.05 grid (a
    # percent-level error would mean the maxima or the decrement were read wrongly).
    assert out["physics_exact"]["damping_ratio_error"] < 5e-9


def test_period_and_peak_estimators_on_known_signals():
    from physrnn.analysis import measured_period, peak_height

    t = np.arange(0, 60, 0.1)
    # Linear interpolation of crossings: the spacing of equal-slope crossings of a pure sine is exact to ~1e-5
    # at 63 samples a period; a runaway angle advancing 2π per 3.7 T gives its period to rounding.
    assert measured_period(np.sin(2 * np.pi * t / 6.3 + 0.4), t) == pytest.approx(6.3, rel=1e-5)
    assert measured_period(2 * np.pi * t / 3.7 + 0.1 * np.sin(2 * np.pi * t / 3.7), t) == pytest.approx(3.7, rel=1e-9)
    assert np.isnan(measured_period(np.full_like(t, np.nan), t))
    # Parabolic refinement: error O((ωΔt)⁴) ≈ 1e-6 here, where the largest sample alone is off by up to 1.2e-3.
    assert peak_height(1.7 * np.cos(t + 0.05)) == pytest.approx(1.7, rel=5e-6)


def test_upward_crossings_are_interpolated_towards_the_level():
    from physrnn.analysis import _crossings

    # y = 2(t − 0.37) sampled every 0.25: it crosses 0.1 upwards at t = 0.42 exactly (linear, so interpolation is
    # exact), and a downward crossing is not one.
    t = np.arange(0.0, 2.0, 0.25)
    y = 2 * (t - 0.37)
    np.testing.assert_allclose(_crossings(y, t, 0.1), [0.42], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(_crossings(-y, t, -0.1), [])


def test_the_period_analysis_reads_the_backbone_against_the_exact_period():
    # A pendulum released from θ0 = 2.0 rad (far from the small-oscillation limit: T = 1.329 × 2π/ω0 at ω0 = 1.7)
    # measured from its exact trajectory: the period to the interpolation's 1e-6, amplitude θ0, energy
    # ω0²(1 − cos θ0). Replayed 1 % slower (time stretched), the measured period is 1 % long.
    from simulators import Pendulum

    system = Pendulum(natural_frequency=np.full(2, 1.7))
    t = np.linspace(0.0, 30.0, 30_001)
    states = solve(system, [[2.0, 0.0], [-1.2, 0.5]], t)
    out = analyse("period", states, t, system, steady_fraction=1 / 3)
    exact = system.period(states[:, 0])
    assert exact[0] == pytest.approx(1.329 * 2 * np.pi / 1.7, rel=1e-3)
    np.testing.assert_allclose(out["period"], exact, rtol=1e-6)
    np.testing.assert_allclose(out["period_exact"], exact, rtol=0)
    assert out["period_rel_error"].max() < 1e-6
    assert out["amplitude"][0] == pytest.approx(2.0, abs=1e-6)
    np.testing.assert_allclose(out["energy"], 1.7**2 * (1 - np.cos(states[:, 0, 0])) + 0.5 * states[:, 0, 1] ** 2,
                               rtol=1e-12)
    slow = analyse("period", states, 1.01 * t, system, steady_fraction=1 / 3)
    np.testing.assert_allclose(slow["period_rel_error"], 0.01, rtol=1e-4)


def test_the_kepler_analysis_reads_period_precession_and_drifts():
    # The exact orbits (μ = 2.7, a = 1.3, e = 0.5), and the same orbits turned at a steady ω_p = 0.01 rad per unit
    # time (positions and velocities rotated together: ε and h unchanged, the LRL vector turned by ω_p t), then the
    # last state's speed raised by 0.1 % (a drift of its energy, which is negative, and of h).
    from simulators import EnsembleConfig, Kepler, generate

    orbits = generate(EnsembleConfig.from_dict({
        "system": "kepler", "n_traj": 2, "dt": 0.005, "t_end": 40.0, "seed": 3,
        "params": {"gravitational_parameter": 2.7, "semi_major_axis": 1.3, "eccentricity": 0.5}}))
    t, states = orbits.time, orbits.states
    system = Kepler(gravitational_parameter=np.full(2, 2.7))
    period = 2 * np.pi * np.sqrt(1.3**3 / 2.7)
    exact = analyse("kepler", states, t, system, steady_fraction=1 / 3)
    np.testing.assert_allclose(exact["period"], period, rtol=1e-4)  # crossings of the unwrapped angle
    np.testing.assert_allclose(exact["period_exact"], period, rtol=1e-12)
    assert exact["period_rel_error"].max() < 1e-4
    assert exact["precession_per_orbit"].max() < 1e-9
    assert exact["energy_drift"].max() < 1e-12 and exact["angular_momentum_drift"].max() < 1e-12

    wp = 0.01
    c, s = np.cos(wp * t)[None, :, None], np.sin(wp * t)[None, :, None]
    turned = states.copy()
    for i in (0, 2):
        turned[..., i:i + 1] = c * states[..., i:i + 1] - s * states[..., i + 1:i + 2]
        turned[..., i + 1:i + 2] = s * states[..., i:i + 1] + c * states[..., i + 1:i + 2]
    turned[:, -1, 2:] *= 1.001
    out = analyse("kepler", turned, t, system, steady_fraction=1 / 3)
    # the LRL vector turns by ω_p·40 = 0.4 rad over 40/T orbits (the raised speed at the end turns it a little
    # more, hence 1e-2 relative)
    np.testing.assert_allclose(out["precession_per_orbit"], wp * period, rtol=1e-2)
    energy = 0.5 * (turned[..., 2] ** 2 + turned[..., 3] ** 2) - 2.7 / np.hypot(turned[..., 0], turned[..., 1])
    assert (energy[:, 0] < 0).all()
    np.testing.assert_allclose(out["energy_drift"], np.abs(energy[:, -1] - energy[:, 0]) / -energy[:, 0],
                               rtol=1e-6)
    np.testing.assert_allclose(out["angular_momentum_drift"], 1e-3, rtol=1e-6)
