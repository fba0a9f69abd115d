"""Cache keys are complete: changing any field of a stage's inputs changes its key.

The cases are generated over every field of the config types (the study, the features, every model kind's
config, the ensemble and each system's parameter specs), so a new field is covered without a new test; a field
whose alternative value cannot be made generically, or that must not matter, is listed here explicitly, and a
field in neither list fails the test.
"""

import dataclasses

import pytest

from physrnn.data import FeatureSpec
from physrnn.models import model_config, model_kind, model_kinds
from physrnn.runner import data_key, model_key, rollout_key
from physrnn.study import StudyConfig, study_from_dict
from simulators import EnsembleConfig, ParamSpec, get_system, system_names

from .helpers import TINY_STUDY

# What each field of a study feeds: the data keys, the model key (through its config or the study's features
# and split), the rollout key. Fields that must not matter are scored afresh on every run, never cached.
STUDY_FIELDS = {
    "train": "data", "test": "data", "features": "model", "validation_fraction": "model", "seeds": "model",
    "models": "model", "context": "rollout", "protocol": "model",
    # Not cached: evaluation, grouping, targets and labels are recomputed from the rollouts on every run.
    "name": None, "description": None, "baselines": None, "valid_fraction": None, "group_by": None,
    "steady_fraction": None, "targets": None, "source": None, "computable": None, "path": None,
    "diagnostics": None,
}
#: Alternatives for string-valued settings (numbers and booleans are perturbed generically).
STRINGS = {"schedule": "plateau", "target": "value", "precision": {"float32": "float64", "float64": "float32"},
           "refine": {"lm": "lbfgs", "lbfgs": "lm"}, "library": {"declared": "polynomial", "polynomial": "declared"}}
#: Alternatives for tuple-valued settings.
TUPLES = {"angles": ("theta",), "ridges": (1e-6,), "thresholds": (1e-3,), "positions": ("x",), "momenta": ("v",),
          "horizons": (4,)}
#: Settings valid only together (a symplectic map's positions and momenta pair up): changed together.
PAIRED = {"positions": "momenta", "momenta": "positions"}
#: Settings valid only beside others (a curriculum of horizons continues Levenberg–Marquardt training): the
#: others are set in both configs compared, so that the setting alone differs.
COMPANIONS = {"horizons": {"refine": "lm", "refine_steps": 1, "precision": "float64"}}


def _other(name, value):
    """A different valid value for a setting of this type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.5
    if isinstance(value, tuple) and name in TUPLES:
        return TUPLES[name]
    if isinstance(value, str) and name in STRINGS:
        alt = STRINGS[name]
        return alt[value] if isinstance(alt, dict) else alt
    raise AssertionError(f"setting {name} = {value!r}: add an alternative value to STRINGS")


def test_every_study_field_is_classified():
    assert {f.name for f in dataclasses.fields(StudyConfig)} == set(STUDY_FIELDS)


@pytest.mark.parametrize("kind", model_kinds())
def test_every_model_setting_changes_the_model_key(kind):
    features = FeatureSpec(system="oscillator")
    base_config = model_config(kind)
    if hasattr(base_config, "refine"):
        # L-BFGS, so that each setting can change alone (LM with refine_steps > 0 needs float64 as well).
        base_config = dataclasses.replace(base_config, refine="lbfgs")
    base = model_key(kind, base_config, features, "data", 0, 0.2)
    for field in dataclasses.fields(base_config):
        if field.name in (model_kind(kind).fixed or {}):
            continue  # pinned by the kind (a GRU's cell): the kind itself is in the key
        names = [field.name, *([PAIRED[field.name]] if field.name in PAIRED else [])]
        start = dataclasses.replace(base_config, **COMPANIONS.get(field.name, {}))
        changed = dataclasses.replace(start, **{name: _other(name, getattr(start, name)) for name in names})
        assert model_key(kind, changed, features, "data", 0, 0.2) != model_key(kind, start, features, "data", 0, 0.2), (
            kind, field.name)
    assert model_key(kind, base_config, features, "data", 1, 0.2) != base  # the split seed
    assert model_key(kind, base_config, features, "data", 0, 0.3) != base  # the validation fraction
    assert model_key(kind, base_config, features, "other", 0, 0.2) != base  # the training data
    trials = {model_key(kind, base_config, features, "data", 0, 0.2, trial=j) for j in (0, 1)}
    assert len(trials | {base}) == 3  # a study of trials: each trial its own model


def test_every_feature_field_changes_the_model_key():
    base_spec = FeatureSpec(system="oscillator")
    alternatives = {"system": None, "observation": "position", "drive": "force", "parameters": ("damping",)}
    assert {f.name for f in dataclasses.fields(FeatureSpec)} == set(alternatives)
    config = model_config("linear")
    base = model_key("linear", config, base_spec, "data", 0, 0.2)
    for name, value in alternatives.items():
        if value is None:
            continue  # the system is the training data's (its key differs with it)
        spec = dataclasses.replace(base_spec, **{name: value})
        assert model_key("linear", config, spec, "data", 0, 0.2) != base, name


def test_the_context_and_the_test_data_change_the_rollout_key():
    base = rollout_key("model", "test", None)
    assert len({base, rollout_key("model", "test", 5), rollout_key("model", "other", None),
                rollout_key("other", "test", None)}) == 4


_ENSEMBLE = {"system": "oscillator", "n_traj": 4, "dt": 0.1, "t_end": 4.0, "seed": 1, "method": "exact"}


def test_every_ensemble_field_changes_the_data_key():
    base_config = EnsembleConfig.from_dict(_ENSEMBLE)
    base = data_key(base_config)
    special = {"system": None,  # another system is another params table: covered per system below
               "n_steps": {"n_steps": 11, "t_end": None}, "t_end": {"t_end": 8.0}, "method": {"method": "rk4"},
               "params": None,  # each parameter spec: below
               "segments": {"segments": {"start": 0.5, "spacing": 1.0}}}
    for field in dataclasses.fields(EnsembleConfig):
        if field.name in special:
            change = special[field.name]
        else:
            change = {field.name: _other(field.name, getattr(base_config, field.name))}
        if change is None:
            continue
        assert data_key(dataclasses.replace(base_config, **change)) != base, field.name


@pytest.mark.parametrize("system", system_names())
def test_every_parameter_spec_changes_the_data_key(system):
    params_class = get_system(system).Params
    base_config = EnsembleConfig(system=system, n_traj=4, dt=0.1, n_steps=11, seed=1)
    base = data_key(base_config)
    for name in params_class.spec_names():
        spec = getattr(base_config.params, name)
        first = spec[0] if isinstance(spec, tuple) else spec
        other = ParamSpec("fixed", (first.values[0] + 0.25,)) if first.kind != "fixed" else \
            ParamSpec("uniform", (first.values[0], first.values[0] + 0.5))
        value = (other,) if isinstance(spec, tuple) else other
        changed = dataclasses.replace(base_config, params=dataclasses.replace(base_config.params, **{name: value}))
        assert data_key(changed) != base, (system, name)


def test_a_study_resolves_to_the_keys_it_runs_with():
    # The keys above are the ones run_study uses: two studies differing only in an uncached field share them.
    import tomllib

    raw = tomllib.loads(TINY_STUDY + "[models.esn]\nunits = 10\n")
    a = study_from_dict(raw)
    b = study_from_dict({**raw, "study": {**raw["study"], "description": "other", "name": "other"}})
    assert data_key(a.train) == data_key(b.train) and data_key(a.test) == data_key(b.test)
    c = study_from_dict({**raw, "train": {**raw["train"], "seed": 9}})
    assert data_key(c.train) != data_key(a.train)


def test_a_rerun_recomputes_exactly_what_a_changed_input_feeds(tmp_path):
    # The runner passes every input to the keys: a rerun with one input changed retrains or rolls out again.
    import tomllib

    import physrnn as pr

    raw = tomllib.loads(TINY_STUDY.replace('baselines = ["euler", "rk4", "linear"]', 'baselines = ["linear"]'))
    lines = []

    def run(table):
        lines.clear()
        pr.run_study(table, root=tmp_path, log=lines.append)
        trained = [line for line in lines if line.startswith("[train]") and "cached" not in line]
        rolled = [line for line in lines if line.startswith("[rollout]")]
        return len(trained), len(rolled)

    assert run(raw) == (1, 1)
    assert run(raw) == (0, 0)  # nothing changed: everything cached
    assert run({**raw, "study": {**raw["study"], "validation_fraction": 0.3}}) == (1, 1)
    assert run({**raw, "features": {"observation": "full", "drive": "none"}}) == (1, 1)
    assert run({**raw, "rollout": {"context": 3}}) == (0, 1)
    assert run({**raw, "study": {**raw["study"], "description": "words"}, "rollout": {"valid_fraction": 0.2}}) \
        == (0, 0)


def test_the_code_that_computed_an_entry_is_in_its_key(monkeypatch, tmp_path):
    # A cached result must not outlive a change to the code that computed it: the simulators' source feeds the
    # data key; the simulators', the features' and the models' source feed the model key.
    import shutil

    from physrnn import cache

    ensemble = EnsembleConfig.from_dict({"system": "oscillator", "n_traj": 2, "dt": 0.1, "n_steps": 5})
    config, features = model_config("linear"), FeatureSpec(system="oscillator")
    keys = data_key(ensemble), model_key("linear", config, features, "data", 0, 0.2)
    edited = tmp_path / "simulators"
    shutil.copytree(cache._SIMULATORS, edited)
    with open(edited / "oscillator.py", "a") as f:
        f.write("\n# an edit\n")
    monkeypatch.setattr(cache, "_SIMULATORS", edited)
    cache.code_fingerprint.cache_clear()
    try:
        assert data_key(ensemble) != keys[0]
        assert model_key("linear", config, features, "data", 0, 0.2) != keys[1]
    finally:
        cache.code_fingerprint.cache_clear()
