"""A tiny study end to end: every stage, the report files, and a re-run that skips finished stages."""

import json

import numpy as np
import pytest

import physrnn as pr
from physrnn.cli import main
from physrnn.diagnostics import exact_exponents
from physrnn.study import StudyConfigError, study_from_dict

ENSEMBLE = {"system": "oscillator", "n_traj": 6, "dt": 0.05, "t_end": 4.0, "seed": 1,
            "params": {"damping": 0.2, "drive_amplitude": 0.5, "drive_frequency": 1.3}}
TINY = f"""
[study]
name = "tiny"
description = "smoke"
seeds = [0, 1]
baselines = ["euler", "linear"]
[features]
observation = "full"
[train]
{chr(10).join(f'{k} = {json.dumps(v)}' for k, v in ENSEMBLE.items() if k != 'params')}
params = {{ damping = 0.2, drive_amplitude = 0.5, drive_frequency = 1.3 }}
[test]
system = "oscillator"
n_traj = 2
dt = 0.05
t_end = 6.0
seed = 2
params = {{ damping = 0.2, drive_amplitude = 0.5, drive_frequency = 1.3 }}
[diagnostics]
long_steps = 300
[models.esn]
units = 20
washout = 10
[targets]
linear = {{ rmse = 1e-9 }}
euler = {{ max_error = 1e-6 }}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_tiny_study_end_to_end_and_resume(tmp_path, tiny, capsys):
    root = tmp_path / "out"
    assert main(["study", str(tiny), "--root", str(root)]) == 0
    first = capsys.readouterr()
    report = root / "reports" / "tiny"
    for name in ("report.html", "report.md", "metrics.json", "metrics.csv", "results.json",
                 "figures/rollout.png", "figures/error.png", "figures/phase.png", "figures/parameters.png",
                 "figures/increments.png"):
        assert (report / name).is_file(), name
    results = json.loads((report / "results.json").read_text())
    by_label = {s["label"]: s for s in results["summary"]}
    assert by_label["esn"]["n_seeds"] == 2 and by_label["euler"]["n_seeds"] == 1  # physics baselines: no seed
    assert by_label["linear"]["rmse_mean"][0] < 1e-10  # exact on the linear oscillator
    assert by_label["euler"]["rmse_mean"][0] > 1e-3
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "physrnn study" in html  # self-contained, says how to reproduce
    assert "[train] esn seed 1" in first.err and "cached" not in first.err
    # The linear map meets its bound (exact); Euler's O(dt) error cannot meet 1e-6, and the report says so.
    assert [(t["label"], t["met"]) for t in results["targets"]] == [("linear", True), ("euler", False)]
    assert "target euler.max_error <= 1e-06: worst seed" in first.out and "NOT MET" in first.out
    assert "| euler | max_error |" in (report / "report.md").read_text()
    # Every report looks inside the maps: the linear map's Jacobian is e^{MΔt} to 1e-10 and gives ω0 and η to
    # 1e-9; Euler's map reads as half the damping (η − ω0²Δt = 0.15 of 0.2 at Δt = 0.05: 25 % off).
    md = (report / "report.md").read_text()
    assert "## Diagnostics: the learned step map's Jacobian" in md and "| exact flow map (floor) |" in md
    diag = {r["label"]: r["diagnostics"] for r in results["rows"]}
    assert diag["linear"]["eigenvalue_error_max"] < 1e-10 and diag["linear"]["damping_rel_error_median"] < 1e-9
    assert diag["euler"]["damping_rel_error_median"] == pytest.approx(0.25, abs=0.01)
    # ... and the rest of the section: Euler's increment is f (its error is the O(Δt) floor), the linear map's is
    # the exact increment; no model diverges over the 300-step long runs of the driven, damped oscillator.
    assert diag["euler"]["increments"]["field_gap_median"] < 1e-13
    assert diag["linear"]["increments"]["error_max"] < 1e-10 < diag["euler"]["increments"]["error_median"]
    assert all(d["long_horizon"]["diverged"] == 0 and d["long_horizon"]["steps"] == 300 for d in diag.values())
    for title in ("what the network approximates", "long horizons (300 steps)", "error growth"):
        assert f"## Diagnostics: {title}" in md, title
    # The exact exponents are computed once per closed-loop start and shared: the ESN starts after its washout
    # (step 11), the others at step 1, and each reads its own start's (over a 6-unit horizon they differ).
    test = pr.StepData.from_trajectories(pr.read_trajectories(results["test_file"]))
    for label, context in (("linear", 1), ("euler", 1), ("esn", 11)):
        expected = np.median(exact_exponents(test, context))
        assert diag[label]["growth"]["lyapunov_exponent_median"] == pytest.approx(expected, rel=1e-12), label
    assert abs(np.median(exact_exponents(test, 11)) - np.median(exact_exponents(test, 1))) > 1e-3
    # Nothing changed: every stage is found, nothing is recomputed, the numbers are the same.
    assert main(["study", str(tiny), "--root", str(root)]) == 0
    second = capsys.readouterr().err
    assert "[train]" in second and all("cached" in line for line in second.splitlines() if line.startswith("[train]"))
    assert "[rollout]" not in second
    again = json.loads((report / "results.json").read_text())
    assert again["summary"] == results["summary"]
    assert main(["report", str(tiny), "--root", str(root)]) == 0


def test_altered_cache_entries_are_rebuilt_not_used(tmp_path, tiny, capsys):
    # The audit: an ESN rollout overwritten with the truth scored RMSE 0; a GRU model copied over the LSTM's key
    # was reported as the LSTM. Every entry is sealed with its checksum and kind, and checked before use.
    import shutil

    root = tmp_path / "out"
    assert main(["study", str(tiny), "--root", str(root), "--quiet"]) == 0
    report = root / "reports" / "tiny"
    before = json.loads((report / "results.json").read_text())
    files = {(r["label"], r["seed"]): r for r in before["rows"]}
    esn_rollout = files[("esn", 0)]["rollout_file"]
    shutil.copy(before["test_file"], esn_rollout)  # the truth where the ESN's rollout was
    for name in ("model_file", "rollout_file"):  # a model and its seal copied over another kind's key
        shutil.copy(files[("esn", 1)][name], files[("linear", 0)][name])
        shutil.copy(files[("esn", 1)][name] + ".sha256", files[("linear", 0)][name] + ".sha256")
    capsys.readouterr()
    assert main(["study", str(tiny), "--root", str(root)]) == 0
    err = capsys.readouterr().err
    name = esn_rollout.rsplit("/", 1)[-1]
    assert f"[rollout] esn seed 0: the cached {name} does not match its checksum (altered or corrupt since it was " \
           "written); rebuilding it" in err
    assert "[train] linear seed 0: the cached " in err and "holds a esn where a linear belongs; rebuilding it" in err
    assert "[rollout] linear seed 0: the cached " in err and "holds a rollout:esn where a rollout:linear belongs" in err
    after = {s["label"]: s for s in json.loads((report / "results.json").read_text())["summary"]}
    first = {s["label"]: s for s in before["summary"]}
    assert after["esn"] == first["esn"]  # its rollout rebuilt from the cached model: the same figures, not RMSE 0
    assert after["linear"]["rmse_mean"][0] < 1e-10  # retrained: exact again, not the ESN's error


def test_bad_study_fails_before_any_work(tmp_path, tiny, capsys):
    tiny.write_text(TINY.replace("units = 20", "units = 0"))
    root = tmp_path / "out"
    try:
        code = main(["study", str(tiny), "--root", str(root)])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "[models.esn] units must be an integer >= 1, got 0" in err
    assert not root.exists()  # nothing was simulated or written


def test_the_shipped_studies_are_valid():
    from pathlib import Path

    from physrnn.study import load_study

    for path in sorted(Path(__file__).resolve().parents[2].joinpath("studies").glob("*.toml")):
        study = load_study(path)
        assert study_from_dict(study.to_dict()).to_dict() == study.to_dict()


def test_the_report_says_how_the_truth_was_computed_and_how_far_a_reference_is_certified():
    from physrnn.report import _missed_by, _truth_facts
    from physrnn.runner import truth_facts
    from simulators import EnsembleConfig, generate

    def ensemble(**kw):
        return generate(EnsembleConfig.from_dict({"system": "duffing", "n_traj": 2, "dt": 0.1, "seed": 3, **kw}))

    exact = truth_facts(ensemble(t_end=5.0, params={"x0": 0.5}))
    chaotic = truth_facts(ensemble(t_end=100.0, method="reference", params={
        "damping": 0.3, "linear_stiffness": -1.0, "drive_amplitude": 0.5, "drive_frequency": 1.2,
        "x0": {"uniform": [-1.5, 1.5]}, "v0": {"uniform": [-1.0, 1.0]}}))
    assert exact["truth"] == "exact" and "certificate" not in exact
    assert chaotic["truth"] == "reference" and chaotic["rtol"] == 1e-12
    facts = dict(_truth_facts({"train": exact, "test": chaotic}))
    assert facts["Truth (train)"] == "exact (closed form)"
    assert "reference (scipy DOP853, rtol 1e-12); against a solve 100× looser" in facts["Truth (test)"]
    # A chaotic orbit over 100 time units (10 Lyapunov times: errors grow e^10-fold) outruns the 1e-8 agreement
    # of two solves whose tolerances differ 100×.
    assert not chaotic["certificate"]["certified"] and "certified over t = " in facts["Truth (test)"]
    lam = dict(_truth_facts({"test": {**exact, "lyapunov_exponent": [0.1, 0.12], "lyapunov_stderr": [0.01, 0.02]}}))
    assert lam["Largest Lyapunov exponent (test orbits, reference)"].startswith("λ1 = 0.11 ± 0.01 (median over 2")
    assert _missed_by({"worst": 3e-3, "bound": 1e-3, "met": False}) == "3×"
    assert _missed_by({"worst": 2.0, "bound": 8.0, "met": False, "better": "max"}) == "4×"
    assert _missed_by({"worst": float("nan"), "bound": 1e-3, "met": False}) == "diverged (NaN)"


def test_study_outputs_reproduce_report_and_name_clashes(tmp_path, tiny, capsys):
    root = tmp_path / "out"
    assert main(["study", str(tiny), "--root", str(root), "--quiet"]) == 0
    report = root / "reports" / "tiny"
    md = (report / "report.md").read_text()
    assert f"`physrnn study {tiny} --root {root}`" in md  # the Reproduce line names the root, always
    # The report is rebuilt from results.json alone: with the cache and the study file gone.
    import shutil

    shutil.rmtree(root / "cache")
    moved = tmp_path / "elsewhere.toml"
    tiny.rename(moved)
    (report / "report.md").unlink()
    capsys.readouterr()
    assert main(["report", str(report)]) == 0
    assert f"`physrnn study {tiny} --root {root}`" in (report / "report.md").read_text()
    # Another study file with the same [study] name is refused before any work, naming the first.
    (tmp_path / "copy.toml").write_text(TINY)
    capsys.readouterr()
    assert main(["study", str(tmp_path / "copy.toml"), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"physrnn study: error: '{report}' holds the report of another study file, '{tiny}', with "
                           "the same [study] name 'tiny'; rename one of the studies, or give this run its own --root")
    assert not (root / "cache").exists()
    # A study never run: an error, or with --missing-ok (what `make report` uses) a note and exit 0.
    (tmp_path / "never.toml").write_text(TINY.replace('name = "tiny"', 'name = "never"'))
    assert main(["report", str(tmp_path / "never.toml"), "--root", str(root)]) == 2
    assert main(["report", str(tmp_path / "never.toml"), "--root", str(root), "--missing-ok"]) == 0
    assert "no stored results (never run); skipped" in capsys.readouterr().err


def test_every_rollout_setting_of_a_study_reaches_the_numbers_it_changes(tmp_path):
    # Non-default context, valid fraction, steady fraction and validation fraction: each number the study
    # reports is the one computed directly at that setting from the study's own rollout, and differs from the
    # number at the default (so a setting dropped on the way cannot pass).
    from physrnn.analysis import analyse
    from physrnn.metrics import valid_time
    from physrnn.models import load_model
    from physrnn.evaluation import read_rollout

    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('seeds = [0, 1]', 'seeds = [3]\nvalidation_fraction = 0.5')
                    .replace("[diagnostics]\nlong_steps = 300", "[diagnostics]\nenabled = false")
                    .replace("[models.esn]\nunits = 20\nwashout = 10\n", "[models]\n")
                    + "[rollout]\ncontext = 7\nvalid_fraction = 0.003\nsteady_fraction = 0.6\n")
    result = pr.run_study(path, root=tmp_path / "out", log=lambda _: None)
    test = pr.StepData.from_trajectories(pr.read_trajectories(result.test_file))
    runs = {r.label: r for r in result.runs}
    assert set(runs) == {"euler", "linear"}
    for run in runs.values():
        rollout = read_rollout(run.rollout_file)
        assert rollout.context == 7
        true, pred, t = test.observed[:, 7:], rollout.observed[:, 7:], rollout.time[7:]
        expected = valid_time(true=true, pred=pred, time=t, fraction=0.003)
        np.testing.assert_array_equal(run.scores.per_trajectory["valid_time"], expected)
        assert run.scores.physics_kind == "resonance"
        physics = analyse("resonance", pred, t, test.system, steady_fraction=0.6)
        for key, value in physics.items():
            np.testing.assert_array_equal(run.scores.physics[key], value)
    euler = runs["euler"]
    default = valid_time(true=test.observed[:, 7:], pred=read_rollout(euler.rollout_file).observed[:, 7:],
                         time=test.time[7:], fraction=0.1)
    assert (euler.scores.per_trajectory["valid_time"] < default).all()  # Euler's O(Δt) phase error
    split = load_model(runs["linear"].model_file).provenance_["split"]
    assert (len(split["train"]), len(split["validation"])) == (3, 3)


def test_a_sindy_model_reports_its_equations_beside_the_true_field(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace('seeds = [0, 1]', 'seeds = [0]').replace('baselines = ["euler", "linear"]',
                                                                          'baselines = []')
                    .replace("[diagnostics]\nlong_steps = 300", "[diagnostics]\nenabled = false")
                    .replace("[models.esn]\nunits = 20\nwashout = 10\n", "[models.sindy]\nthreshold = 1e-3\n")
                    .replace("linear = {{ rmse = 1e-9 }}\neuler = {{ max_error = 1e-6 }}\n".replace("{{", "{")
                             .replace("}}", "}"), ""))
    result = pr.run_study(path, root=tmp_path / "out", log=lambda _: None)
    identified = result.runs[0].identified
    # ẍ = −x − 0.2 ẋ + 0.5 cos(1.3 t): the drive enters as 0.5 × its first phase feature, d0
    assert identified["holds"] and identified["spurious"] == 0 and identified["missed"] == 0
    assert identified["error"] < 1e-5
    assert identified["truth"] == ["x' = 1 v", "v' = -1 x - 0.2 v + 0.5 d0"]
    pr.write_report(result, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Identified equations" in md and "v' = -1 x - 0.2 v + 0.5 d0" in md


def _trials_study(n_test=3, **models):
    orbit = {"system": "lorenz63", "method": "rk23", "dt": 0.025, "seed": 0,
             "params": {"x0": 17.67715816276679, "y0": 12.931379185960404, "z0": 43.91404334248268}}
    return {"study": {"name": "trials", "seeds": [0], "protocol": "trials", "baselines": ["rk4"],
                      "validation_fraction": 0.25},
            "features": {"observation": "full"},
            "train": {**orbit, "n_traj": 3, "t_end": 4.0, "segments": {"start": 5.0, "spacing": 4.0}},
            "test": {**orbit, "n_traj": n_test, "n_steps": 30, "segments": {"start": 8.9, "spacing": 4.0}},
            "models": models, "rollout": {"context": 5}, "diagnostics": {"enabled": False}}


def test_a_study_of_trials_trains_one_model_per_trajectory_and_forecasts_its_own(tmp_path):
    # Gauthier et al.'s protocol: trial j's model learns from training stretch j alone and forecasts test
    # stretch j (which starts 5 states before stretch j ends). A model with a fixed ridge uses the whole stretch;
    # one that chooses its ridge holds back the stretch's last quarter (validation_fraction) to choose it on.
    result = pr.run_study(_trials_study(**{"fixed": {"kind": "nvar", "delay": 2, "ridge": 2.5e-6},
                                           "chosen": {"kind": "nvar", "delay": 2}}),
                          root=tmp_path, log=lambda _: None)
    train = pr.StepData.from_trajectories(pr.read_trajectories(result.train_file))
    test = pr.StepData.from_trajectories(pr.read_trajectories(result.test_file))
    np.testing.assert_array_equal(test.observed[:, :5], train.observed[:, -5:])  # the context ends each stretch
    fixed, chosen = (next(r for r in result.runs if r.label == label) for label in ("fixed", "chosen"))
    for j in range(3):  # scored as if each stretch had been fitted and forecast alone
        alone = pr.NVAR(delay=2, ridge=2.5e-6).fit(train.take([j]))
        forecast = alone.rollout(test.take([j]), context=5).observed[0, 5:]
        rmse = np.sqrt(np.mean((forecast - test.observed[j, 5:]) ** 2, axis=0))
        np.testing.assert_allclose(fixed.scores.per_trajectory["rmse"][j], rmse, rtol=1e-10)
    assert fixed.scores.n_traj == 3 and "lyapunov_nrmse" in fixed.scores.per_trajectory
    held = pr.load_model(chosen.model_file).provenance_["split"]
    assert held == {"train": [0], "validation": [0], "test": [0], "train_steps": 161 - 40}
    assert pr.load_model(fixed.model_file).provenance_["split"]["train_steps"] == 161
    # the baseline learns nothing: one run, as in any study
    assert [r.label for r in result.runs].count("rk4") == 1


def test_a_study_of_trials_pairs_trajectories_by_index():
    with pytest.raises(StudyConfigError, match=r"\[train\] has 3 and \[test\] 2; give both the same n_traj"):
        study_from_dict(_trials_study(n_test=2, nvar={"delay": 2}))
    with pytest.raises(StudyConfigError, match="protocol must be one of ensemble, trials, got 'trial'"):
        study_from_dict({**_trials_study(nvar={"delay": 2}), "study": {"name": "x", "protocol": "trial"}})


CONSERVATIVE = """
[study]
name = "conservative"
seeds = [0]
baselines = ["euler", "rk4", "linear"]
[features]
observation = "full"
drive = "none"
[diagnostics]
long_steps = 20000
long_starts = 2
[train]
system = "oscillator"
n_traj = 4
dt = 0.1
t_end = 6.0
seed = 1
params = { natural_frequency = 1.3 }
[test]
system = "oscillator"
n_traj = 2
dt = 0.1
t_end = 6.0
seed = 2
params = { natural_frequency = 1.3 }
[models]
"""


def test_the_long_runs_say_which_maps_keep_the_energy_and_which_let_it_grow(tmp_path, capsys):
    # Undamped, ω0 = 1.3, Δt = 0.1, 2 × 10⁴ steps: the least-squares linear map is the exact flow map (its
    # energy error stays at rounding, 4e-13, whose growth is no model's), RK4 dissipates a little every step
    # (secular, t^1) and Euler amplifies by √(1 + (ω0Δt)²) a step until it leaves the bound.
    path = tmp_path / "conservative.toml"
    path.write_text(CONSERVATIVE)
    assert main(["study", str(path), "--root", str(tmp_path / "out"), "--quiet"]) == 0
    report = tmp_path / "out" / "reports" / "conservative"
    summary = {s["label"]: s for s in json.loads((report / "results.json").read_text())["summary"]}
    growth = {label: s["invariant_growth"]["energy"] for label, s in summary.items()}
    assert growth["linear"]["class"] == "bounded" and growth["rk4"]["class"] == "secular"
    assert growth["linear"]["exponent"] == pytest.approx(0.0, abs=1e-12) and growth["rk4"]["exponent"] == pytest.approx(1.0, abs=0.01)
    assert growth["euler"] == {"class": "diverged", "steps": 20000, "exponent": None}
    md = (report / "report.md").read_text()
    assert "energy error over 20000 steps" in md and "| rk4 | 1 |" in md and "secular (t^1.00)" in md
    assert "invariant error growth (worst seed)" in md and "bounded (t^0.00)" in md
    assert "| linear | 0 of 2 | – | energy 3.7" in md and "| energy bounded (t^0.00) (exact t^0.00) |" in md
