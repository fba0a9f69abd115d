"""Study configs: a whole file validated before any work, every mistake named by file and key."""

import copy

import json

import pytest

from physrnn.study import StudyConfigError, load_study, stage_key, study_from_dict

ENSEMBLE = {"system": "oscillator", "n_traj": 8, "dt": 0.05, "t_end": 5.0, "seed": 1,
            "params": {"damping": 0.2, "drive_amplitude": 0.5, "drive_frequency": 1.3}}
GOOD = {
    "study": {"name": "tiny", "description": "a test", "seeds": [0, 1, 2]},
    "features": {"observation": "full"},
    "train": ENSEMBLE,
    "test": {**ENSEMBLE, "n_traj": 2, "seed": 2},
    "models": {"gru": {"units": 8, "window": 2}, "reservoir": {"kind": "esn", "units": 50}},
    "rollout": {"valid_fraction": 0.05},
}


def _with(path: str, value):
    raw = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


_DELETE = object()


def test_a_good_study_resolves():
    study = study_from_dict(GOOD, "tiny.toml")
    assert [m.label for m in study.models] == ["gru", "reservoir"] and study.models[1].kind == "esn"
    assert study.seeds == (0, 1, 2) and study.baselines == ("persistence", "euler", "rk4", "linear")
    assert study.features.system == "oscillator" and study.valid_fraction == 0.05
    again = study_from_dict(study.to_dict(), "resolved")
    assert again.to_dict() == study.to_dict()  # the resolved config is itself a valid study


@pytest.mark.parametrize("path,value,match", [
    ("colour", "red", r"tiny\.toml: \[top level\] unknown key colour"),
    ("models", _DELETE, r"tiny\.toml: missing section \[models\]"),
    ("study.name", "", r"\[study\] name must be a non-empty string"),
    ("study.seeds", [0, -1], r"\[study\] seeds must be a non-empty list of integers >= 0"),
    ("study.seeds", "0,1", r"\[study\] seeds must be a non-empty list"),
    ("study.baselines", ["oracle"], r"\[study\] baselines must be a list drawn from persistence"),
    ("study.epochs", 3, r"\[study\] unknown key epochs"),
    ("features.observation", "velocity", r"\[features\] unknown observation 'velocity'"),
    ("features.scaling", "minmax", r"\[features\] unknown key scaling"),
    ("train.dt", 0.0, r"\[train\] dt = 0\.0 must be > 0"),
    ("train.params", {"dampin": 0.1}, r"\[train\] unknown key in \[params\] of an oscillator ensemble: dampin"),
    ("test.dt", 0.1, r"\[test\] dt = 0\.1 differs from \[train\] dt = 0\.05"),
    ("test", {"system": "eigen", "n_traj": 2, "dt": 0.05, "n_steps": 10},
     r"\[test\] system 'eigen' differs from \[train\] system 'oscillator'"),
    ("models.gru", {"units": 0}, r"\[models\.gru\] units must be an integer >= 1, got 0"),
    ("models.gru", {"unitz": 8}, r"\[models\.gru\] unknown setting for a gru model: unitz"),
    ("models.gru", 32, r"\[models\.gru\] must be a table of settings"),
    ("models.mine", {"units": 8}, r"\[models\.mine\] unknown model type 'mine'; set kind to one of"),
    ("models.reservoir", {"kind": "esn", "spectral_radius": -1.0}, r"\[models\.reservoir\] spectral_radius must"),
    ("rollout.context", 0, r"\[rollout\] context must be an integer >= 1, got 0"),
    # Checked now, not after simulating: the context against each model's window (gru: 2) and the test length.
    ("rollout.context", 50, r"\[rollout\] context = 50 is less than model reservoir's minimum 51"),
    ("rollout.context", 1, r"\[rollout\] context = 1 is less than model gru's minimum 2 \(its window or washout\)"),
    ("rollout.context", 101, r"\[rollout\] context 101 \(model persistence\) leaves no closed-loop step of the test "
                             r"trajectories' 101 steps"),
    # A network whose weights alone exceed the machine's memory, refused in one line giving the size.
    ("models.gru", {"units": 10**9}, r"\[models\.gru\] units = 1000000000 \(1 gru layer\(s\), 3e\+18 weights\) needs "
                                     r"about 48 EB of memory, more than this machine's \d"),
    ("models.reservoir", {"kind": "esn", "units": 10**7}, r"units = 10000000 \(an echo-state reservoir\) needs about "
                                                          r"1\.6 PB of memory, more than this machine's"),
    ("rollout.horizon", 10, r"\[rollout\] unknown key horizon"),
    ("diagnostics.horizon", 10, r"\[diagnostics\] unknown key horizon; allowed: enabled, points, "
                                r"increment_points, long_steps, long_starts"),
    ("diagnostics.long_steps", 1.5, r"\[diagnostics\] long_steps must be an integer >= 0, got 1\.5"),
    ("diagnostics.points", 0, r"\[diagnostics\] points must be an integer >= 1, got 0"),
    ("diagnostics.enabled", "no", r"\[diagnostics\] enabled must be true or false, got 'no'"),
    ("diagnostics.long_steps", 10**13, r"\[diagnostics\] long_steps x long_starts needs about .* of memory, more "
                                       r"than this machine's"),
    ("rollout.group_by", "colour", r"\[rollout\] group_by = 'colour' is not a grouping of the oscillator system; "
                                   r"choose one of regime, training_range, damping"),
    ("rollout.group_by", "training_range", r"group_by = \"training_range\" needs parameter-aware models"),
    ("rollout.steady_fraction", 0.0, r"\[rollout\] steady_fraction must be a number in \(0, 1\], got 0\.0"),
    ("targets", {"mine": {"rmse": 1.0}}, r"\[targets\] 'mine' is not a model of this study; choose from"),
    ("targets", {"gru": {"speed": 1.0}}, r"\[targets\] gru\.speed is not a metric; choose from rmse"),
    ("targets", {"gru": {"rmse": -1.0}}, r"\[targets\] gru\.rmse must be a number > 0, got -1\.0"),
    # A figure of another system's analysis is refused before any work, naming what this study computes.
    ("targets", {"gru": {"eigenvalue_rel_error": 1e-3}},
     r"\[targets\] gru\.eigenvalue_rel_error is not computed by this study \(the oscillator system observed as "
     r"x, v\); it computes rmse, nrmse, max_error, valid_time_median, valid_periods_median, energy_error, "
     r"amplitude_rel_error, phase_error, amplitude_rel_error_max"),
    ("targets", {"gru": 1.0}, r"\[targets\] gru must be a table such as"),
    ("models.gru", {"target": "next"}, r"\[models\.gru\] unknown target 'next'; choose increment or value"),
])
def test_bad_studies_are_rejected_naming_the_key(path, value, match):
    with pytest.raises(StudyConfigError, match=match):
        study_from_dict(_with(path, value), "tiny.toml")


def test_a_study_of_baselines_alone_is_valid_but_not_of_nothing():
    assert study_from_dict(_with("models", {}), "tiny.toml").models == ()  # how a sweep measures its baselines
    nothing = _with("models", {})
    nothing["study"]["baselines"] = []
    with pytest.raises(StudyConfigError, match=r"\[models\] is empty and there are no baselines"):
        study_from_dict(nothing, "tiny.toml")


def test_a_resolved_study_loads_from_json(tmp_path):
    study = study_from_dict(GOOD, "tiny.toml")
    (tmp_path / "s.json").write_text(json.dumps(study.to_dict()))
    assert load_study(tmp_path / "s.json").to_dict() == study.to_dict()  # a sweep trial's study.json
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StudyConfigError, match=r"bad\.json: not valid JSON"):
        load_study(tmp_path / "bad.json")


def test_load_study_from_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[study]\nname = 'x'\n[models.gru]\nunits = \n")
    with pytest.raises(StudyConfigError, match=r"bad\.toml: not valid TOML"):
        load_study(path)
    with pytest.raises(StudyConfigError, match=r"no such study config"):
        load_study(tmp_path / "none.toml")


def test_stage_keys_follow_exactly_their_inputs():
    a = stage_key("train", {"units": 8, "window": 2}, "data-key")
    assert a == stage_key("train", {"window": 2, "units": 8}, "data-key")  # order of keys is irrelevant
    assert a != stage_key("train", {"units": 9, "window": 2}, "data-key")
    assert a != stage_key("train", {"units": 8, "window": 2}, "other-data")
    assert a != stage_key("rollout", {"units": 8, "window": 2}, "data-key")


def test_a_test_file_of_its_own_length_bounds_the_context(tmp_path):
    # A [test] file of 37 output times (not the 101 of GOOD's ensemble): context 36 leaves one closed-loop
    # step, 37 none; the file's own length is what the study checks against.
    from simulators import EnsembleConfig, simulate_to_file

    path = tmp_path / "test.h5"
    simulate_to_file(EnsembleConfig.from_dict({**ENSEMBLE, "n_traj": 2, "seed": 2, "t_end": 1.8}), path)
    raw = {**_with("models", {}), "test": {"file": str(path)}}
    assert study_from_dict({**raw, "rollout": {"context": 36}}, "tiny.toml").test.n_steps == 37
    with pytest.raises(StudyConfigError, match=r"\[rollout\] context 37 \(model persistence\) leaves no closed-loop "
                                               r"step of the test trajectories' 37 steps"):
        study_from_dict({**raw, "rollout": {"context": 37}}, "tiny.toml")
