"""``import physrnn as pr``: the main job in a few lines, models on plain arrays, studies on a user's own files,
reports rebuilt from stored results, and library calls that leave the caller's process as they found it."""

import json
import random
import shutil

import numpy as np
import pytest

import physrnn as pr
from simulators import EnsembleConfig, solve
from simulators.integrate import REFERENCE_ATOL, REFERENCE_RTOL
from tests.physrnn.helpers import TINY_STUDY

DRIVEN = dict(system="oscillator", dt=0.05, damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)


@pytest.fixture(scope="module")
def train():
    return pr.StepData.from_trajectories(pr.simulate(n_traj=8, t_end=10, seed=1, **DRIVEN))


@pytest.fixture(scope="module")
def test():
    return pr.StepData.from_trajectories(pr.simulate(n_traj=2, t_end=20, seed=2, **DRIVEN))


def test_simulate_fit_rollout_evaluate_in_memory(train, test):
    fit, val = train.split((0.75, 0.25), seed=0)
    assert fit.n_traj == 6 and val.n_traj == 2 and not set(fit.trajectories) & set(val.trajectories)
    scores = pr.evaluate(pr.LinearMap().fit(fit, val).rollout(test), test)
    summary = scores.summary()
    # The least-squares map on (x, v, cos, sin) is the exact flow map of the driven linear oscillator: its
    # closed-loop error is rounding, accumulated over 400 steps (measured ~1e-15).
    assert max(summary["rmse"]) < 1e-12 and summary["physics"]["kind"] == "resonance"
    euler = pr.evaluate(pr.Euler().fit(fit).rollout(test), test).summary()
    assert min(euler["rmse"]) > 1e-2  # Euler at Δt = 0.05 is off by ~0.1: the scores tell the two apart


def test_models_fit_and_roll_out_on_plain_arrays():
    # A linear system given only as arrays, with no equations: s_{i+1} = M s_i for a rotation-with-decay M.
    dt, theta, decay = 0.1, 0.3, 0.99
    m = decay * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    starts = np.random.default_rng(0).standard_normal((5, 2))
    states = np.empty((5, 60, 2))
    states[:, 0] = starts
    for i in range(59):
        states[:, i + 1] = states[:, i] @ m.T
    data = pr.StepData.from_arrays(states, dt=dt)
    fit, test = data.split((0.6, 0.4), seed=1)
    rollout = pr.LinearMap().fit(fit).rollout(test)
    # The map is linear, so the least-squares fit recovers it to rounding (measured ~1e-15 over 59 steps).
    assert max(pr.evaluate(rollout, test).summary()["rmse"]) < 1e-12
    with pytest.raises(ValueError, match=r"the euler baseline steps the true equations, but these data carry no "
                                         r"system \(they were built from arrays\)"):
        pr.Euler().fit(fit).rollout(test)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 10, 2)), r"train must be a StepData, got ndarray; build one with StepData.from_trajectories"
                           r"\(\.\.\.\) or, from arrays, StepData.from_arrays\(states, dt=\.\.\.\)"),
])
def test_fit_on_an_array_says_what_to_pass(bad, match):
    with pytest.raises(TypeError, match=match):
        pr.LinearMap().fit(bad)


def test_from_arrays_rejects_bad_input():
    with pytest.raises(ValueError, match=r"dt must be a finite number > 0, got 0"):
        pr.StepData.from_arrays(np.zeros((1, 5, 2)), dt=0)
    with pytest.raises(ValueError, match=r"states hold non-finite values"):
        pr.StepData.from_arrays(np.full((1, 5, 2), np.nan), dt=0.1)
    with pytest.raises(ValueError, match=r"known must have shape \(1, 5, n_known\)"):
        pr.StepData.from_arrays(np.zeros((1, 5, 2)), dt=0.1, known=np.zeros((1, 4, 1)))


def test_from_arrays_takes_one_trajectory_as_two_dimensional_arrays():
    # One trajectory of 7 steps and 3 components with 2 known inputs, given without the trajectory axis: the same
    # data as with it, the known inputs after the states in the model's inputs, the names and grid as given.
    rng = np.random.default_rng(4)
    states, known = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    data = pr.StepData.from_arrays(states, dt=0.25, known=known, state_names=("a", "b", "c"))
    batched = pr.StepData.from_arrays(states[None], dt=0.25, known=known[None], state_names=("a", "b", "c"))
    assert data.n_traj == 1 and data.n_obs == 3 and data.dt == 0.25
    np.testing.assert_array_equal(data.observed, states[None])
    np.testing.assert_array_equal(data.inputs, np.concatenate([states, known], axis=-1)[None])
    np.testing.assert_array_equal(data.inputs, batched.inputs)
    np.testing.assert_array_equal(data.time, 0.25 * np.arange(7))


@pytest.mark.parametrize("kind", ["euler", "linear", "esn", "gru"])
def test_a_misspelt_training_option_is_refused_by_every_model(kind, train):
    # It used to be accepted silently by every model but the recurrent ones.
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'verbos'"):
        pr.build_model(kind).fit(train, verbos=0)


def test_a_recurrent_model_given_another_config_is_a_type_error():
    from physrnn.models import EchoStateConfig, RecurrentStepModel

    with pytest.raises(TypeError, match=r"RecurrentStepModel takes a RecurrentConfig, got EchoStateConfig"):
        RecurrentStepModel(EchoStateConfig())


def test_training_leaves_the_global_random_state_as_it_was(train):
    random.seed(123)
    np.random.seed(123)
    before = random.random(), np.random.random()
    random.seed(123)
    np.random.seed(123)
    pr.GRU(units=4, window=2, epochs=1, seed=7).fit(train, verbose=0)
    assert (random.random(), np.random.random()) == before


def test_writing_a_report_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_STUDY)
    pr.write_report(pr.run_study(path, root=tmp_path, log=lambda m: None), tmp_path / "report")
    assert matplotlib.get_backend() == backend


def test_one_pair_of_reference_tolerances():
    # solve() and ensemble configs used to default to different tolerances (1e-11 and 1e-12).
    config = EnsembleConfig.from_dict({"system": "oscillator", "n_traj": 1, "dt": 0.1, "n_steps": 2})
    assert (config.rtol, config.atol) == (REFERENCE_RTOL, REFERENCE_ATOL) == (1e-12, 1e-14)
    import inspect

    defaults = inspect.signature(solve).parameters
    assert (defaults["rtol"].default, defaults["atol"].default) == (REFERENCE_RTOL, REFERENCE_ATOL)




def test_the_report_is_rebuilt_from_the_stored_results_alone(tmp_path, capsys):
    from physrnn.cli import main

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_STUDY)
    root = tmp_path / "root"
    assert main(["study", str(path), "--root", str(root), "-q"]) == 0
    report = root / "reports" / "tiny"
    first = (report / "report.md").read_text()
    shutil.rmtree(root / "cache")  # no model, rollout or trajectory file left
    (report / "report.md").unlink()
    assert main(["report", str(path), "--root", str(root)]) == 0
    assert (report / "report.md").read_text().split("## What was run")[0] == first.split("## What was run")[0]
    assert f"--root {root}" in first  # the Reproduce line gives the root it ran in


def test_a_study_learns_from_the_users_own_files(tmp_path):
    from simulators import generate, write_trajectories

    def ensemble(n, t_end, seed):
        return generate(EnsembleConfig.from_dict({"system": "oscillator", "n_traj": n, "dt": 0.1, "t_end": t_end,
                                                  "seed": seed, "params": {"damping": 0.3}}))

    (tmp_path / "data").mkdir()
    write_trajectories(tmp_path / "data" / "mine-train.h5", ensemble(4, 4.0, 1))
    write_trajectories(tmp_path / "data" / "mine-test.h5", ensemble(2, 6.0, 2))
    body = TINY_STUDY.split("[train]")[0] + ('[train]\nfile = "data/mine-train.h5"\n'
                                             '[test]\nfile = "data/mine-test.h5"\n[models]\n')
    path = tmp_path / "mine.toml"
    path.write_text(body)
    from_files = pr.run_study(path, root=tmp_path / "a", log=lambda m: None)
    (tmp_path / "tiny.toml").write_text(TINY_STUDY)
    simulated = pr.run_study(tmp_path / "tiny.toml", root=tmp_path / "b", log=lambda m: None)

    def scores(result):  # as JSON text, so that a NaN (no maxima to read ζ from in 6 s) equals a NaN
        return json.dumps([{k: v for k, v in line.items() if k != "fit_seconds_mean"} for line in result.summary])

    # The same ensembles, from files or simulated: the same scores, and the file's own states are the truth.
    assert scores(from_files) == scores(simulated)
    assert json.loads(from_files.to_json())["config"]["train"] == {"file": str(tmp_path / "data" / "mine-train.h5")}
    # A regenerated file is a different input: the cache key follows the file's content, not its name.
    write_trajectories(tmp_path / "data" / "mine-train.h5", ensemble(4, 4.0, 9))
    changed = pr.run_study(path, root=tmp_path / "a", log=lambda m: None)
    assert changed.model("linear")["rmse_mean"] != from_files.model("linear")["rmse_mean"]
