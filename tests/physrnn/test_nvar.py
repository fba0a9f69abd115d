"""The NVAR kind on known answers: the paper's features in the paper's order, a planted delay map recovered
exactly at skip 2, the linear map at order 1, the ridge rule asserted on its sequence, its step Jacobian
against finite differences of its own step (angles, known inputs, two taps), and a file saved and loaded
without TensorFlow."""

import json
import subprocess
import sys
from itertools import combinations_with_replacement

import numpy as np
import pytest

import physrnn as pr
from physrnn.models import build_model, load_model
from physrnn.models.nvar import NVAR, monomial_indices


def test_monomials_are_the_unique_products_in_the_papers_order():
    # d = 3, k = 2: 6 linear terms, 21 = 6·7/2 quadratic ones, x0², x0x1, …, x5² (Gauthier et al.'s dtot = 28).
    idx = monomial_indices(6, 2)
    assert idx.shape == (21, 2) and idx[:3].tolist() == [[0, 0], [0, 1], [0, 2]] and idx[-1].tolist() == [5, 5]
    assert len(monomial_indices(4, 3)) == 20 and monomial_indices(3, 3)[3].tolist() == [0, 1, 1]
    model = build_model("nvar", order=3)
    model._monomials = monomial_indices(2, 3)
    lin = np.array([2.0, -3.0])
    np.testing.assert_array_equal(model._features(lin), [2.0, -3.0, 8.0, -12.0, 18.0, -27.0])


def _planted(skip: int, n_steps: int = 60, n_traj: int = 8, dt: float = 0.1, seed: int = 5):
    """Scalar sequences of o_{i+1} = o_i + Δt (0.3 − 0.8 o_i + 0.5 o_{i−s} o_{i−2s} − 0.1 o_{i−2s}²), a map an
    NVAR with three taps s apart and order 2 holds exactly (it settles on o = 0.5; the data are its approach from
    random histories)."""
    rng = np.random.default_rng(seed)
    o = np.zeros((n_traj, n_steps, 1))
    o[:, :2 * skip + 1, 0] = rng.uniform(-1.0, 1.5, (n_traj, 2 * skip + 1))
    for i in range(2 * skip, n_steps - 1):
        a, b, c = o[:, i, 0], o[:, i - skip, 0], o[:, i - 2 * skip, 0]
        o[:, i + 1, 0] = a + dt * (0.3 - 0.8 * a + 0.5 * b * c - 0.1 * c * c)
    return pr.StepData.from_arrays(o, dt=dt)


def test_a_planted_delay_map_is_recovered_term_by_term_at_skip_two():
    data = _planted(skip=2)
    model = build_model("nvar", delay=3, skip=2, order=2, ridge=0.0).fit(data)
    # lin = (o_i, o_{i−2}, o_{i−4}); monomials in order 00, 01, 02, 11, 12, 22.
    expected = np.array([-0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, -0.1])
    np.testing.assert_allclose(model.kernel_[:, 0], expected, atol=1e-9)
    assert model.intercept_[0] == pytest.approx(0.3, abs=1e-9)
    assert model.min_context == 5
    test = _planted(skip=2, n_traj=2, n_steps=100, seed=6)  # held-out histories
    rollout = model.rollout(test, context=5)
    np.testing.assert_allclose(rollout.observed, test.observed, atol=1e-9)
    # The wrong skip cannot hold the map: its closed loop departs from the truth.
    wrong = build_model("nvar", delay=3, skip=1, order=2, ridge=0.0).fit(data)
    assert np.abs(wrong.rollout(test, context=5).observed - test.observed).max() > 1e-2


def test_order_one_without_taps_is_the_linear_map(small_train, held_out):
    nvar = build_model("nvar", delay=1, order=1, ridge=0.0).fit(small_train)
    linear = build_model("linear").fit(small_train)
    np.testing.assert_allclose(nvar.rollout(held_out).observed, linear.rollout(held_out).observed, atol=1e-10)
    np.testing.assert_allclose(nvar.rollout(held_out).observed, held_out.observed, atol=1e-10)  # exact: linear


def test_the_ridge_is_the_one_whose_validation_loops_diverge_least_then_err_least(small_train, small_val,
                                                                               monkeypatch):
    # Four candidate readouts with planted closed loops on the two validation trajectories: the first diverges
    # on one, the second errs 0.2 (in units of each component's training spread), the last two 0.1 each (the
    # larger ridge wins the tie). The rule, not the data, chooses.
    ridges = (1e-9, 1e-6, 1e-4, 1e-2)
    spread = small_train.observed.reshape(-1, 2).std(axis=0)
    truth = small_val.observed
    context = 2

    def planted(self, kernel, intercept, data, ctx, n_steps, bound):
        assert kernel.shape[0] == 4 and ctx == context and n_steps == truth.shape[1]
        out = np.repeat(truth[None].copy(), 4, axis=0)
        out[0, 1, 10:] = np.nan
        for c, e in ((1, 0.2), (2, 0.1), (3, 0.1)):
            out[c, :, ctx:] += e * spread
        return out, np.full((4, data.n_traj), -1)

    monkeypatch.setattr(NVAR, "_closed_loop", planted)
    model = build_model("nvar", delay=2, ridges=ridges).fit(small_train, small_val)
    assert model.history_["ridge"] == [1e-2]
    assert model.history_["val_diverged"] == [1.0, 0.0, 0.0, 0.0]
    assert model.history_["val_rmse"] == pytest.approx([0.0, 0.2, 0.1, 0.1], abs=1e-12)
    assert model.history_["ridges"] == list(ridges)


def test_select_steps_limits_the_validation_loop(small_train, small_val, monkeypatch):
    seen = []
    original = NVAR._closed_loop

    def spy(self, kernel, intercept, data, context, n_steps, bound):
        seen.append((context, n_steps))
        return original(self, kernel, intercept, data, context, n_steps, bound)

    monkeypatch.setattr(NVAR, "_closed_loop", spy)
    build_model("nvar", delay=3, skip=2, select_steps=40, ridges=[1e-8]).fit(small_train, small_val)
    assert seen == [(5, 45)]


def test_the_step_jacobian_is_the_derivative_of_its_own_step():
    # A driven pendulum with θ seen as (cos θ, sin θ), the drive's phase features and ω0 as known inputs, two
    # taps two steps apart: central differences of the model's one-step map in each state of its window.
    tr = pr.simulate(system="pendulum", n_traj=5, dt=0.05, t_end=6.0, seed=3, damping=0.3,
                     natural_frequency={"uniform": [1.0, 1.5]}, drive_amplitude=0.4, drive_frequency=1.1,
                     method="reference")
    data = pr.StepData.from_trajectories(tr, parameters=["natural_frequency"])
    model = build_model("nvar", delay=2, skip=2, order=2, ridge=1e-6, angles=["theta"]).fit(data)
    steps = np.array([4, 30, 77])
    jac = model.step_jacobian(data, steps)
    assert jac.shape == (5, 3, 3, 2, 2)
    np.testing.assert_array_equal(jac[:, :, 1], 0.0)  # position 1 is lag 1, not a tap at skip 2
    h = 1e-6
    for i, n in enumerate(steps):
        for position, lag in ((2, 0), (0, 2)):
            for c in range(2):
                plus, minus = data.observed.copy(), data.observed.copy()
                plus[:, n - lag, c] += h
                minus[:, n - lag, c] -= h
                step = [model.rollout(_with(data, o), context=n + 1, n_steps=n + 2).observed[:, n + 1]
                        for o in (plus, minus)]
                np.testing.assert_allclose(jac[:, i, position, :, c], (step[0] - step[1]) / (2 * h), atol=1e-7)


def test_a_long_closed_loop_runs_compiled_and_agrees_with_numpy(monkeypatch):
    # The driven pendulum above (angles, a drive and a parameter as known inputs, taps two apart, order 3): the
    # compiled loop (from COMPILED_STEPS steps on) and the NumPy loop give the same rollout to rounding, and a
    # trajectory that leaves the bound is flagged at the same step by both.
    from physrnn.models import nvar

    tr = pr.simulate(system="pendulum", n_traj=4, dt=0.05, t_end=12.0, seed=3, damping=0.3,
                     natural_frequency={"uniform": [1.0, 1.5]}, drive_amplitude=0.4, drive_frequency=1.1,
                     method="reference")
    data = pr.StepData.from_trajectories(tr, parameters=["natural_frequency"])
    model = build_model("nvar", delay=3, skip=2, order=3, ridge=1e-6, angles=["theta"]).fit(data)
    monkeypatch.setattr(nvar, "COMPILED_STEPS", 100)
    bound = float(np.median(np.abs(data.observed).max(axis=(1, 2))))  # some trajectories pass it, some do not
    compiled = model.rollout(data, context=6, bound=bound)
    assert compiled.diverged.any() and not compiled.diverged.all()
    numpy_loop, at = model._closed_loop(model.kernel_[None], model.intercept_[None], data, 6, data.time.size, bound)
    np.testing.assert_allclose(compiled.observed, numpy_loop[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(compiled.diverged_at, at[0])
    monkeypatch.setattr(nvar, "COMPILED_STEPS", 10**9)
    np.testing.assert_allclose(model.rollout(data, context=6, bound=bound).observed, compiled.observed, rtol=1e-12,
                               atol=1e-12)


def _with(data, observed):
    return pr.StepData(observed, data.known, data.time, data.dt, data.spec, data.trajectories, data.system,
                       observed, data.state_names)


def test_saved_and_loaded_without_tensorflow(tmp_path, small_train, small_val, held_out):
    model = build_model("nvar", delay=2, order=2).fit(small_train, small_val)
    path = model.save(tmp_path / "nvar.keras")
    held = tmp_path / "held.npz"
    np.savez(held, observed=held_out.observed, known=held_out.known)
    script = f"""
import sys, json, numpy as np
import physrnn as pr
from physrnn.models import load_model
m = load_model({str(path)!r})
d = np.load({str(held)!r})
data = pr.StepData(d["observed"], d["known"], np.arange(d["observed"].shape[1]) * m.dt_, m.dt_, m.spec_,
                   np.arange(1), None, d["observed"], ("x", "v"))
r = m.rollout(data)
print(json.dumps({{"tf": "tensorflow" in sys.modules, "end": r.observed[0, -1].tolist()}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["tf"] is False
    np.testing.assert_array_equal(out["end"], model.rollout(held_out).observed[0, -1])
    again = load_model(path)
    assert again.history_ == model.history_ and again.config == model.config


@pytest.mark.parametrize("settings, match", [
    ({"delay": 0}, r"^delay must be an integer >= 1, got 0$"),
    ({"skip": 0}, r"^skip must be an integer >= 1, got 0$"),
    ({"order": 0}, r"^order must be an integer >= 1, got 0$"),
    ({"ridge": float("nan")}, r"^ridge must be a finite number \(>= 0, or negative to choose it from ridges\), "
                              r"got nan$"),
    ({"ridges": []}, r"^ridges must be a list of numbers >= 0 such as \[1e-8, 1e-6\], got \[\]$"),
    ({"ridges": [1e-6, -1.0]}, r"^each of ridges must be a finite number >= 0, got -1\.0$"),
    ({"constant": 1}, r"^constant must be true or false, got 1$"),
    ({"angles": "theta"}, r"^angles must be a list of component names"),
    ({"select_steps": -1}, r"^select_steps must be an integer >= 0, got -1$"),
])
def test_bad_settings_are_refused_in_one_line(settings, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_model("nvar", **settings)


def test_fitting_refuses_what_it_cannot_do(small_train):
    with pytest.raises(ValueError, match=r"^the nvar model chooses its ridge on the closed loops of validation "
                                         r"trajectories: pass validation data to fit\(\), or set ridge"):
        build_model("nvar").fit(small_train)
    with pytest.raises(ValueError, match=r"^angles phi are not observed components; choose from x, v$"):
        build_model("nvar", angles=["phi"], ridge=0.0).fit(small_train)
    short = small_train.take(np.arange(2))
    short = pr.StepData(short.observed[:, :5], short.known[:, :5], short.time[:5], short.dt, short.spec,
                        short.trajectories, short.system, short.states[:, :5], short.state_names)
    with pytest.raises(ValueError, match=r"^the training trajectories have 5 steps, too few for the NVAR's taps "
                                         r"spanning 7; lengthen them or lower delay or skip$"):
        build_model("nvar", delay=4, skip=2, ridge=0.0).fit(short)


def test_monomial_indices_match_itertools():
    assert monomial_indices(5, 3).tolist() == [list(c) for c in combinations_with_replacement(range(5), 3)]


def test_the_recorded_training_error_is_the_mean_squared_one_step_residual(small_train):
    # At order 1 with one tap the features are the inputs themselves: the residual of the increment is
    # u_i W + b − (o_{i+1} − o_i)/Δt, and history_["train_mse"] its mean square (not its mean cube or its RMS).
    model = build_model("nvar", delay=1, order=1, ridge=10.0).fit(small_train)  # a ridge that leaves a residual
    u = small_train.inputs[:, :-1].reshape(-1, small_train.inputs.shape[-1])
    residual = u @ model.kernel_ + model.intercept_ - small_train.targets.reshape(-1, small_train.n_obs)
    assert model.history_["train_mse"] == [pytest.approx(np.mean(residual**2), rel=1e-9)]
    assert model.history_["train_mse"][0] > 1e-8  # a residual to measure
