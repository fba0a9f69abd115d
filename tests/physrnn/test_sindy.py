"""The SINDy kind on known answers: every coefficient of Duffing's, Van der Pol's and Lotka–Volterra's fields
recovered from exact states to 1e-4 with no spurious term, the pendulum's ω0² through its declared sin θ, a
driven field with the drive's features as control, PySINDy's default differences measured worse than ours, RK4
sub-steps paying h⁴, the rule that picks the threshold asserted on its sequence, and a file loaded without
TensorFlow."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

import physrnn as pr
from physrnn.models import build_model
from physrnn.models.selection import choose_on_closed_loops


def _fit(system, params, *, n=8, dt=0.01, t_end=20.0, method="reference", parameters=(), **settings):
    tr = pr.simulate(system=system, n_traj=n, dt=dt, t_end=t_end, seed=1, method=method, **params)
    data = pr.StepData.from_trajectories(tr, parameters=parameters)
    return build_model("sindy", **settings).fit(data.take(np.arange(n - 2)), data.take(np.arange(n - 2, n))), data


def _field(model) -> dict[tuple[str, str], float]:
    """The identified field as {(component, term): coefficient} over its non-zero terms."""
    return {(s, f): w for c, s in enumerate(model.state_names_) for f, w in zip(model.feature_names_,
                                                                              model.coefficients_[:, c]) if w != 0}


@pytest.mark.parametrize("system, params, method, truth", [
    # The double well (α < 0), exact elliptic states: ẍ = 1.3 x − 0.7 x³.
    ("duffing", dict(linear_stiffness=-1.3, cubic_stiffness=0.7, x0={"uniform": [-2.0, 2.0]},
                     v0={"uniform": [-1.0, 1.0]}), "exact",
     {("x", "v"): 1.0, ("v", "x"): 1.3, ("v", "x^3"): -0.7}),
    # μ = 1.7 (not 1): ẍ = μ ẋ − μ x² ẋ − x, the μ x² ẋ term of degree 3.
    ("vanderpol", dict(mu=1.7, x0={"uniform": [-2.0, 2.0]}, v0={"uniform": [-1.0, 1.0]}), "reference",
     {("x", "v"): 1.0, ("v", "x"): -1.0, ("v", "v"): 1.7, ("v", "x^2 v"): -1.7}),
    # Four different rates: ẋ = 1.1 x − 0.4 x y, ẏ = 0.1 x y − 0.6 y.
    ("lotka-volterra", dict(alpha=1.1, beta=0.4, gamma=0.6, delta=0.1, x0={"uniform": [5.0, 15.0]},
                            y0={"uniform": [2.0, 8.0]}), "reference",
     {("x", "x"): 1.1, ("x", "x y"): -0.4, ("y", "y"): -0.6, ("y", "x y"): 0.1}),
], ids=["duffing", "vanderpol", "lotka-volterra"])
def test_every_coefficient_is_recovered_from_exact_states_and_nothing_else(system, params, method, truth):
    model, _ = _fit(system, params, method=method)
    found = _field(model)
    assert set(found) == set(truth), f"spurious or missing terms: {sorted(set(found) ^ set(truth))}"
    for key, value in truth.items():
        assert found[key] == pytest.approx(value, rel=1e-4), key


def test_the_pendulums_declared_sine_gives_omega0_squared_and_a_polynomial_cannot():
    params = dict(natural_frequency=1.3, theta0={"uniform": [-2.5, 2.5]}, omega0={"uniform": [-1.0, 1.0]})
    declared, data = _fit("pendulum", params, dt=0.1, t_end=60.0, method="exact")
    found = _field(declared)
    assert set(found) == {("theta", "omega"), ("omega", "sin(theta)")}
    assert -found[("omega", "sin(theta)")] == pytest.approx(1.69, rel=1e-3)  # the study's target
    generic, _ = _fit("pendulum", params, dt=0.1, t_end=60.0, method="exact", library="polynomial", degree=3)
    assert "sin(theta)" not in generic.feature_names_ and "theta^3" in generic.feature_names_
    test = data.take(np.arange(6, 8))
    error = {m: np.nanmax(np.abs(m.rollout(test).observed - test.observed)) for m in (declared, generic)}
    assert error[declared] < 2e-3 and error[generic] > 100 * error[declared]


def test_pysindys_default_second_order_differences_lose_against_fourth_order():
    params = dict(linear_stiffness=-1.3, cubic_stiffness=0.7, x0={"uniform": [-2.0, 2.0]},
                  v0={"uniform": [-1.0, 1.0]})
    errors = {}
    for order in (2, 4):
        model, _ = _fit("duffing", params, dt=0.05, method="exact", difference_order=order, threshold=1e-3)
        errors[order] = abs(_field(model)[("v", "x^3")] + 0.7) / 0.7
    assert errors[2] > 30 * errors[4] and errors[4] < 1e-4


def test_a_driven_field_takes_the_drives_features_as_control():
    # ẍ = −0.3 ẋ + 1.3 x − 0.7 x³ + 0.45 cos(1.2 t): the forcing is 0.45 × the first phase feature, d0.
    params = dict(damping=0.3, linear_stiffness=-1.3, cubic_stiffness=0.7, drive_amplitude=0.45,
                  drive_frequency=1.2, x0={"uniform": [-2.0, 2.0]}, v0={"uniform": [-1.0, 1.0]})
    model, data = _fit("duffing", params)
    truth = {("x", "v"): 1.0, ("v", "v"): -0.3, ("v", "x"): 1.3, ("v", "x^3"): -0.7, ("v", "d0"): 0.45}
    found = _field(model)
    assert set(found) == set(truth)
    for key, value in truth.items():
        assert found[key] == pytest.approx(value, rel=1e-4), key
    test = data.take(np.arange(6, 8))
    assert np.abs(model.rollout(test).observed - test.observed).max() < 1e-5


def test_substeps_pay_rk4s_fourth_order_on_a_coarse_grid():
    # Against the identified field's own solution (solve_ivp at 1e-12), the rollout's error is RK4's alone: four
    # sub-steps per Δt = 0.25 cut it by at least 4⁴ = 256 (a step of another order, 4³ or 4⁵, fails).
    from dataclasses import replace

    from scipy.integrate import solve_ivp

    model, data = _fit("pendulum", dict(natural_frequency=1.3, theta0={"uniform": [-2.0, 2.0]}, omega0=0.0),
                       dt=0.25, t_end=20.0, method="exact", threshold=1e-3)
    test = data.take(np.arange(6, 7))
    known = test.known[0, 0]
    solution = solve_ivp(lambda t, s: model._field(s[None, None], known, model.coefficients_[None])[0, 0],
                         (0.0, test.time[-1]), test.observed[0, 0], t_eval=test.time, rtol=1e-12, atol=1e-12).y.T
    errors = []
    for substeps in (1, 4):
        stepped = copy.copy(model)  # the same field, another number of sub-steps
        stepped.config = replace(model.config, substeps=substeps)
        errors.append(np.abs(stepped.rollout(test).observed[0] - solution).max())
    assert errors[0] > 1e-6 and 128 < errors[0] / errors[1] < 1024  # measured 509: order 4.5 on this orbit


def test_the_closed_loop_rule_prefers_bounded_then_accurate_then_stronger():
    truth = np.zeros((2, 30, 2))
    spread = np.array([2.0, 0.5])
    planted = np.repeat(truth[None], 4, axis=0)
    planted[0, 1, 12:] = np.nan  # the smallest candidate diverges on one trajectory
    planted[1, :, 3:] += 0.2 * spread  # then 0.2, 0.1, 0.1 in units of the spread
    planted[2, :, 3:] += 0.1 * spread
    planted[3, :, 3:] += 0.1 * spread
    chosen, record = choose_on_closed_loops(planted, truth, 3, spread, (1e-9, 1e-6, 1e-4, 1e-2), "threshold")
    assert chosen == 1e-2
    assert record["thresholds"] == [1e-9, 1e-6, 1e-4, 1e-2] and record["val_diverged"] == [1.0, 0.0, 0.0, 0.0]
    assert record["val_rmse"] == pytest.approx([0.0, 0.2, 0.1, 0.1], abs=1e-12)
    planted[:, 0, 20:] = np.nan  # every candidate now loses trajectory 0 and the first loses both
    chosen, record = choose_on_closed_loops(planted, truth, 3, spread, (1e-9, 1e-6, 1e-4, 1e-2), "threshold")
    assert record["val_rmse"][0] is None and record["val_diverged"] == [2.0, 1.0, 1.0, 1.0] and chosen == 1e-2


def test_the_step_jacobian_is_the_flow_maps_for_an_exactly_identified_field():
    from physrnn.diagnostics import exact_step_jacobian

    model, data = _fit("pendulum", dict(natural_frequency=1.3, theta0={"uniform": [-2.0, 2.0]},
                                        omega0={"uniform": [-1.0, 1.0]}), dt=0.05, method="exact")
    steps = np.array([3, 40])
    jac = model.step_jacobian(data, steps)[:, :, 0]
    exact = exact_step_jacobian(data.system, data.states, data.time, steps, data.dt)
    np.testing.assert_allclose(jac, exact, atol=1e-7)  # RK4's local error at Δt = 0.05, and the differences'


def test_saved_and_loaded_without_tensorflow(tmp_path):
    model, data = _fit("lotka-volterra", dict(alpha=1.1, beta=0.4, gamma=0.6, delta=0.1,
                                             x0={"uniform": [5.0, 15.0]}, y0={"uniform": [2.0, 8.0]}))
    path = model.save(tmp_path / "sindy.keras")
    script = f"""
import sys, json
from physrnn.models import load_model
m = load_model({str(path)!r})
print(json.dumps({{"tf": "tensorflow" in sys.modules, "equations": m.equations()}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    check=True).stdout)
    assert out == {"tf": False, "equations": model.equations()}
    assert model.equations() == ["x' = 1.1 x - 0.4 x y", "y' = -0.6 y + 0.1 x y"]
    again = pr.load_model(path)
    test = data.take(np.arange(6, 8))
    np.testing.assert_array_equal(again.rollout(test).observed, model.rollout(test).observed)


@pytest.mark.parametrize("settings, match", [
    ({"library": "fourier"}, r"^unknown library 'fourier'; choose declared or polynomial$"),
    ({"degree": -1}, r"^degree must be an integer >= 0, got -1$"),
    ({"difference_order": 0}, r"^difference_order must be an integer >= 1, got 0$"),
    ({"substeps": 0}, r"^substeps must be an integer >= 1, got 0$"),
    ({"threshold": float("inf")}, r"^threshold must be a finite number \(>= 0, or negative to choose it from "
                                  r"thresholds\), got inf$"),
    ({"thresholds": [1e-3, -1.0]}, r"^each of thresholds must be a finite number >= 0, got -1\.0$"),
    ({"alpha": -1.0}, r"^alpha must be a finite number >= 0, got -1\.0$"),
])
def test_bad_settings_are_refused_in_one_line(settings, match):
    with pytest.raises(ValueError, match=match):
        build_model("sindy", **settings)


def test_fitting_refuses_what_it_cannot_do(small_train):
    with pytest.raises(ValueError, match=r"^the sindy model chooses its threshold on the closed loops of validation "
                                         r"trajectories: pass validation data to fit\(\), or set threshold"):
        build_model("sindy").fit(small_train)
    arrays = pr.StepData.from_arrays(small_train.observed, dt=small_train.dt)
    with pytest.raises(ValueError, match=r"data's system declares no library; set library = \"polynomial\""):
        build_model("sindy", threshold=1e-3).fit(arrays)
    with pytest.raises(ValueError, match=r"declares no polynomial degree; set degree"):
        build_model("sindy", threshold=1e-3, library="polynomial").fit(arrays)
    fitted = build_model("sindy", threshold=1e-3, library="polynomial", degree=1).fit(arrays)
    # data given as arrays name their components s0, s1, ...; the polynomial of degree 1 holds the linear field
    assert [e.split(" = ")[0] for e in fitted.equations()] == ["s0'", "s1'"]
    assert fitted.feature_names_ == ("1", "s0", "s1")
    position = pr.StepData.from_trajectories(pr.simulate(system="oscillator", n_traj=2, dt=0.05, t_end=2.0, seed=1),
                                             observation="position")
    with pytest.raises(ValueError, match=r"^sindy identifies the vector field of the whole state; these data observe "
                                         r"x of x, v \(use observation = \"full\"\)$"):
        build_model("sindy", threshold=1e-3).fit(position)


def test_select_steps_limits_the_validation_loop(monkeypatch):
    from physrnn.models.sindy import SINDy

    seen = []
    original = SINDy._closed_loop

    def spy(self, coefficients, data, context, n_steps, bound):
        seen.append((context, n_steps))
        return original(self, coefficients, data, context, n_steps, bound)

    monkeypatch.setattr(SINDy, "_closed_loop", spy)
    _fit("lotka-volterra", dict(alpha=1.1, beta=0.4, gamma=0.6, delta=0.1, x0={"uniform": [5.0, 15.0]},
                               y0={"uniform": [2.0, 8.0]}), t_end=2.0, select_steps=40, thresholds=[1e-3])
    assert seen == [(1, 41)]  # one true state, then 40 closed-loop steps


def test_the_truths_cut_is_relative_to_its_largest_coefficient():
    # Lorenz at σ = 9, ρ = 31, β = 2.2: a cut of 5 % of the largest true coefficient (31) keeps the four of
    # magnitude 2.2 and more and drops the three of magnitude 1.
    tr = pr.simulate(system="lorenz63", n_traj=3, dt=0.002, t_end=2.0, seed=3, method="reference", sigma=9.0,
                     rho=31.0, beta=2.2)
    data = pr.StepData.from_trajectories(tr)
    model = build_model("sindy", threshold=0.05).fit(data)
    assert model.against_truth(data)["truth"] == ["x' = -9 x + 9 y", "y' = 31 x - 1 y - 1 x z", "z' = -2.2 z + 1 x y"]
    assert model.against_truth(data, tolerance=0.05)["truth"] == ["x' = -9 x + 9 y", "y' = 31 x", "z' = -2.2 z"]


def test_keplers_declared_central_force_gives_mu_from_the_orbits():
    # μ = 2.7: v̇ = −μ r/r³ through the declared x/r³ and y/r³; a cubic polynomial cannot hold it.
    params = dict(gravitational_parameter=2.7, semi_major_axis=1.3, eccentricity={"uniform": [0.1, 0.5]},
                  mean_anomaly={"uniform": [0.0, 6.0]})
    model, data = _fit("kepler", params, dt=0.01, t_end=8.0, method="exact", threshold=1e-2)
    found = _field(model)
    assert found == pytest.approx({("x", "vx"): 1.0, ("y", "vy"): 1.0, ("vx", "x/r^3"): -2.7, ("vy", "y/r^3"): -2.7},
                                  rel=1e-4)
    assert model.against_truth(data)["holds"]


@pytest.mark.parametrize("case", ["driven pendulum", "kepler"])
def test_a_long_rollout_runs_compiled_and_agrees_with_numpy(case, monkeypatch):
    # The field written once for NumPy and for the compiled loop: a driven pendulum (declared sin θ and cos θ, the
    # drive's features and ω0 as known inputs read from their spline at every RK4 stage, 2 substeps) and Kepler
    # (x/r³, no known input). Both loops give the same rollout to rounding and flag the same divergences.
    from physrnn.models import sindy

    if case == "kepler":
        tr = pr.simulate(system="kepler", n_traj=3, dt=0.05, t_end=20.0, seed=4, eccentricity={"uniform": [0.1, 0.5]})
        data, settings = pr.StepData.from_trajectories(tr), {"threshold": 1e-3}
    else:
        tr = pr.simulate(system="pendulum", n_traj=4, dt=0.05, t_end=12.0, seed=3, damping=0.3, method="reference",
                         natural_frequency={"uniform": [1.0, 1.5]}, drive_amplitude=0.4, drive_frequency=1.1)
        data, settings = pr.StepData.from_trajectories(tr, parameters=["natural_frequency"]), {"threshold": 1e-2}
    model = build_model("sindy", library="declared", substeps=2, **settings).fit(data)
    assert model._compilable()
    bound = float(np.median(np.abs(data.observed).max(axis=(1, 2))))  # some trajectories pass it, some do not
    monkeypatch.setattr(sindy, "COMPILED_STEPS", 100)
    compiled = model.rollout(data, context=3, bound=bound)
    assert compiled.diverged.any() and not compiled.diverged.all()
    numpy_loop, at = model._closed_loop(model.coefficients_[None], data, 3, data.time.size, bound)
    np.testing.assert_allclose(compiled.observed, numpy_loop[0], rtol=1e-11, atol=1e-11)
    np.testing.assert_array_equal(compiled.diverged_at, at[0])


def test_a_declared_term_without_xp_keeps_the_rollout_in_numpy(monkeypatch):
    from physrnn.models import sindy

    data = pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=3, dt=0.1, t_end=10.0, seed=2))
    model = build_model("sindy", library="declared", threshold=1e-3).fit(data)
    model._terms = {**model._terms, "sin(theta)": lambda s: np.sin(s[..., 0])}  # a plug-in's NumPy-only term
    assert not model._compilable()
    monkeypatch.setattr(sindy, "COMPILED_STEPS", 10)
    monkeypatch.setattr(sindy.SINDy, "_compiled_loop", lambda *a: pytest.fail("compiled a NumPy-only term"))
    assert np.isfinite(model.rollout(data).observed).all()


def test_the_library_variables_are_state_parameters_terms_then_drive():
    # z = (state, the parameters given, the declared terms, the drive's features): with a drive (2 phase
    # features) and a parameter given, the parameter must not be read from a drive column or the other way.
    tr = pr.simulate(system="pendulum", n_traj=3, dt=0.05, t_end=4.0, seed=3, damping=0.3, method="reference",
                     natural_frequency={"uniform": [1.0, 1.5]}, drive_amplitude=0.4, drive_frequency=1.1)
    data = pr.StepData.from_trajectories(tr, parameters=["natural_frequency"])
    model = build_model("sindy", library="declared", threshold=1e-2).fit(data)
    z = model._variables(data.observed, data.known)
    theta = data.observed[..., 0]
    np.testing.assert_array_equal(z[..., :2], data.observed)
    np.testing.assert_array_equal(z[..., 2], data.known[..., 2])  # ω0, the parameter
    np.testing.assert_array_equal(z[..., 3], np.sin(theta))
    np.testing.assert_array_equal(z[..., 4], np.cos(theta))
    np.testing.assert_array_equal(z[..., 5:], data.known[..., :2])  # the drive's (cos, sin) phase
    assert z.shape[-1] == 7


def test_the_threshold_is_chosen_with_each_components_own_spread(monkeypatch, small_train):
    # Components of different scales weigh alike in the choice: the spread passed is one per component.
    from physrnn.models import sindy

    seen = {}

    def spy(observed, truth, context, spread, candidates, name):
        seen["spread"] = spread
        return candidates[0], {}

    monkeypatch.setattr(sindy, "choose_on_closed_loops", spy)
    held = small_train.take(np.arange(2))
    build_model("sindy", thresholds=(1e-3, 1e-2)).fit(small_train, held)
    np.testing.assert_allclose(seen["spread"], np.std(small_train.observed.reshape(-1, small_train.n_obs), axis=0))
    assert seen["spread"].shape == (small_train.n_obs,)


def test_reading_it_names_what_it_needs_and_keeps_the_precision_asked(monkeypatch):
    data = pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=3, dt=0.1, t_end=10.0, seed=2))
    model = build_model("sindy", library="declared", threshold=1e-3).fit(data)
    assert model.equations(precision=2)[1].startswith("omega' = -1 sin(theta)")
    coefficient = model.coefficients_[model.feature_names_.index("sin(theta)"), 1]
    assert f"{abs(coefficient):.2g}" in model.equations(precision=2)[1]
    assert f"{abs(coefficient):.9g}" in model.equations(precision=9)[1] and coefficient != -1.0
    arrays = pr.StepData.from_arrays(data.observed, dt=0.1)
    with pytest.raises(ValueError, match="^the data carry no system, so no true field to compare with$"):
        model.against_truth(arrays)
    # a library too large for memory is refused before any work, naming its degree and size
    from simulators import _validation

    monkeypatch.setattr(_validation, "physical_memory", lambda: 1000.0)
    with pytest.raises(ValueError, match=r"^degree = 3 \(10 library terms of \d+ training rows\) needs about"):
        build_model("sindy", library="polynomial", degree=3, threshold=1e-3).fit(data)


def test_a_loop_shorter_than_the_threshold_stays_in_numpy(monkeypatch):
    # Compiling costs about a second: a loop of fewer closed-loop steps than COMPILED_STEPS (the validation loops,
    # short forecasts) runs in NumPy, one of exactly that many runs compiled.
    from physrnn.models import sindy

    data = pr.StepData.from_trajectories(pr.simulate(system="pendulum", n_traj=2, dt=0.1, t_end=10.0, seed=2))
    model = build_model("sindy", library="declared", threshold=1e-3).fit(data)
    calls = []

    def compiled(self, data, context, n_steps, bound):  # a stand-in that records the call
        calls.append(n_steps)
        return np.zeros((data.n_traj, n_steps, data.n_obs)), np.full(data.n_traj, -1)

    monkeypatch.setattr(sindy.SINDy, "_compiled_loop", compiled)
    closed = data.time.size - 3  # closed-loop steps after a context of 3
    monkeypatch.setattr(sindy, "COMPILED_STEPS", closed + 1)
    assert np.isfinite(model.rollout(data, context=3).observed).all() and not calls
    monkeypatch.setattr(sindy, "COMPILED_STEPS", closed)
    model.rollout(data, context=3)
    assert calls == [data.time.size]
