"""Study configs: one TOML file per reproducible study, validated whole before any work starts.

A study names its data (a training and a test ensemble, as in ``studies/data/*.toml``), the features the
models see, the models with their settings, the seeds each model is trained with (for the spread), and
the rollout. Every section and key is checked at load time; a mistake anywhere is reported with the file
and the key, e.g. ``studies/driven.toml: [models.gru] unknown setting for a gru model: unitz``.

.. code-block:: toml

    [study]
    name = "driven"
    description = "Drive across the resonance: learned steady state against the analytic curve."
    seeds = [0, 1, 2]
    baselines = ["persistence", "euler", "rk4", "linear"]
    protocol = "ensemble"       # or "trials": each training trajectory trains its own model, which forecasts
                                # the test trajectory of the same index (Gauthier et al.'s Lorenz-63 protocol)

    [features]
    observation = "full"        # or "position"
    drive = "phase"
    parameters = []

    [train]                     # an ensemble config (see simulators.EnsembleConfig) ...
    system = "oscillator"
    ...
    # [train]                   # ... or a trajectory file of one's own (relative to the study file)
    # file = "../data/my-ensemble.h5"

    [test]
    ...

    [models.gru]                # a label; `kind` defaults to the label
    units = 32
    window = 2

    [targets]                   # optional: what a model must reach, checked on its worst seed
    gru = { max_error = 1e-2 }  # any summary figure the study computes (see target_metrics)

    [rollout]
    context = 8                 # true states before the loop closes (default: each model's minimum)
    valid_fraction = 0.1        # valid time: error beyond this fraction of the signal's range
    group_by = "regime"         # break the test set down: regime, training_range or a parameter name
    steady_fraction = 0.33      # share of the horizon the steady-state (resonance) fit uses

    [diagnostics]               # optional: inside the learned step map (physrnn.diagnostics)
    enabled = true              # false: none (a sweep's trials, judged by their rollouts alone)
    points = 8                  # steps per test trajectory where the step Jacobian is read
    increment_points = 16       # steps where the learned increment is compared with the exact one and f
    long_steps = 100000         # closed-loop steps of the long runs (0: none)
    long_starts = 3             # test starts they run from

Models, metrics, analyses and systems come from their registries, so the choices a config may name (and the
errors that list them) follow whatever is registered. Validating a study imports no TensorFlow.

Each stage's output is keyed by :func:`stage_key`, a hash of exactly the inputs that determine it, so a
re-run can skip finished stages and an interrupted study resume.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from simulators._validation import check_memory
from simulators.ensemble import EnsembleConfig
from simulators.system import PhysicalSystem, get_system

from .analysis import GROUPINGS
from .data import FeatureSpec
from .evaluation import all_figures, summary_figures
from .models.configs import model_config, model_kinds

__all__ = ["BASELINES", "DataFile", "ModelEntry", "StudyConfig", "StudyConfigError", "baseline_settings", "load_study",
           "stage_key", "target_metrics"]


def target_metrics() -> dict[str, str]:
    """Every figure a [targets] entry may bound, and which way is better: each metric's summary and each
    analysis' figures (a target must also be one its study computes; :func:`study_from_dict` checks)."""
    return all_figures()

_SECTIONS = {"study": True, "features": True, "train": True, "test": True, "models": True, "rollout": False,
             "diagnostics": False, "targets": False}
#: The [diagnostics] settings and their defaults (each an integer, at least the bound beside it).
DIAGNOSTIC_DEFAULTS = {"points": (8, 1), "increment_points": (16, 1), "long_steps": (100_000, 0), "long_starts": (3, 1)}
_STUDY_KEYS = ("name", "description", "seeds", "baselines", "validation_fraction", "protocol")
#: How models meet data: "ensemble", one model per seed trained on the training trajectories (a share of them held
#: back to validate) and rolled out from every test start; "trials", one model per training trajectory, which
#: forecasts the test trajectory of the same index (a model that validates holds back the end of its trajectory);
#: the diagnostics read the first trial's model, and the fit time is the mean over trials.
PROTOCOLS = ("ensemble", "trials")
_ROLLOUT_KEYS = ("context", "valid_fraction", "group_by", "steady_fraction")
#: The baselines a study may list (and lists by default): the physics at the same step and the linear map.
BASELINES = ("persistence", "euler", "rk4", "linear")


@dataclass(frozen=True)
class DataFile:
    """A study's training or test ensemble taken from a trajectory file instead of simulated.

    ``path`` is resolved against the study file's folder; ``fingerprint`` (SHA-256 of the file) keys the
    cache, so a regenerated file is never mistaken for the one a cached model was trained on.
    """

    path: str
    system: str
    dt: float
    n_traj: int
    fingerprint: str
    n_steps: int = 0

    @classmethod
    def open(cls, path: str | Path) -> DataFile:
        from simulators.trajectory_file import file_sha256, read_trajectories

        p = Path(path)
        tr = read_trajectories(p)  # validates the file whole
        if not np.isfinite(tr.dt):
            raise ValueError(f"'{p}' has a non-uniform time grid; the learned update needs a fixed dt")
        return cls(path=str(p.resolve()), system=tr.system, dt=float(tr.dt), n_traj=tr.n_traj,
                   fingerprint=file_sha256(p), n_steps=tr.n_steps)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path}

    def _params(self) -> dict[str, np.ndarray]:
        """The file's /params alone (the states are not read again: the file was validated whole on opening)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            return {name: ds[()] for name, ds in f["params"].items()}

    def sample_system(self) -> PhysicalSystem:
        return get_system(self.system).from_params(self._params()).broadcast(self.n_traj)

    def param_names(self) -> tuple[str, ...]:
        return tuple(self._params())


class StudyConfigError(ValueError):
    """A study config that cannot run; the message names the file and the key."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of a study: a label, a model type and its settings (already validated)."""

    label: str
    kind: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class StudyConfig:
    """A validated study (see the module docstring for the file layout)."""

    name: str
    description: str
    seeds: tuple[int, ...]
    baselines: tuple[str, ...]
    validation_fraction: float
    features: FeatureSpec
    train: EnsembleConfig | DataFile
    test: EnsembleConfig | DataFile
    models: tuple[ModelEntry, ...]
    context: int | None
    valid_fraction: float
    source: dict[str, Any]
    group_by: str | None = None
    steady_fraction: float = 1 / 3
    targets: tuple[tuple[str, str, float], ...] = ()
    #: Every summary figure this study's rollouts are scored by, and which way is better (from the registries).
    computable: Mapping[str, str] | None = None
    #: The file it was loaded from (absolute), "" for one built in Python; its results record it.
    path: str = ""
    #: The [diagnostics] settings (every key of DIAGNOSTIC_DEFAULTS).
    diagnostics: Mapping[str, int] | None = None
    #: One of PROTOCOLS.
    protocol: str = "ensemble"

    def diagnostic_settings(self) -> dict[str, Any]:
        return ({"enabled": True} | {k: default for k, (default, _) in DIAGNOSTIC_DEFAULTS.items()}
                | dict(self.diagnostics or {}))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (as a report records it)."""
        return {
            "study": {"name": self.name, "description": self.description, "seeds": list(self.seeds),
                      "baselines": list(self.baselines), "validation_fraction": self.validation_fraction,
                      **({"protocol": self.protocol} if self.protocol != "ensemble" else {})},
            "features": {k: v for k, v in self.features.to_config().items() if k != "system"},  # from [train]
            "train": self.train.to_dict(),
            "test": self.test.to_dict(),
            "models": {m.label: {"kind": m.kind, **m.settings} for m in self.models},
            "rollout": {"context": self.context, "valid_fraction": self.valid_fraction,
                        **({"group_by": self.group_by} if self.group_by else {}),
                        "steady_fraction": self.steady_fraction},
            "diagnostics": self.diagnostic_settings(),
            **({"targets": {label: {metric: bound for lab, metric, bound in self.targets if lab == label}
                            for label in dict.fromkeys(t[0] for t in self.targets)}} if self.targets else {}),
        }


def baseline_settings(kind: str, features: FeatureSpec) -> dict[str, Any]:
    """A baseline's settings in a study with these features. Under position-only observation the linear
    baseline sees two past positions: one position cannot fix the state, two do (and the map is exact for a
    linear system), so window 1 would be a strawman."""
    return {"window": 2} if kind == "linear" and features.observation == "position" else {}


def _n_steps(ensemble: EnsembleConfig | DataFile) -> int | None:
    """The number of times of an ensemble, where known without solving it (not for ``t_end = "auto"``)."""
    return (ensemble.n_steps or None) if isinstance(ensemble, DataFile) else ensemble.known_n_steps


def stage_key(stage: str, *inputs: Any) -> str:
    """A stable hash of a stage's name and the JSON of everything that determines its output.

    Keys are equal exactly when the canonical JSON (sorted keys) of the inputs is; a stage whose output
    exists under its key is done.
    """
    text = json.dumps([stage, *inputs], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fail(where: str, message: str) -> StudyConfigError:
    return StudyConfigError(f"{where}: {message}")


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw[key]
    if not isinstance(value, Mapping):
        raise _fail(where, f"[{key}] must be a table, got {type(value).__name__}")
    return value


def _unknown(given: Mapping[str, Any], allowed, where: str, section: str) -> None:
    extra = sorted(set(given) - set(allowed))
    if extra:
        raise _fail(where, f"[{section}] unknown key{'s' if len(extra) > 1 else ''} {', '.join(extra)}; allowed: "
                           f"{', '.join(allowed)}")


def _ensemble(raw: Mapping[str, Any], section: str, where: str, base_dir: Path) -> EnsembleConfig | DataFile:
    table = _table(raw, section, where)
    try:
        if "file" in table:
            extra = sorted(set(table) - {"file"})
            if extra:
                raise ValueError(f"a data file takes no other keys; drop {', '.join(extra)} (the file holds them)")
            if not isinstance(table["file"], str):
                raise TypeError(f"file must be a path, got {table['file']!r}")
            path = Path(table["file"])
            return DataFile.open(path if path.is_absolute() else base_dir / path)
        return EnsembleConfig.from_dict(table)
    except (ValueError, TypeError) as err:
        raise _fail(where, f"[{section}] {err}") from None


def _system_of(ensemble: EnsembleConfig | DataFile) -> PhysicalSystem:
    """The ensemble's system with its parameters (drawn, not solved: cheap), to ask what it can compute."""
    if isinstance(ensemble, DataFile):
        return ensemble.sample_system()
    system, _ = ensemble.sample()
    return system.broadcast(ensemble.n_traj)


def study_from_dict(raw: Mapping[str, Any], where: str = "study", base_dir: str | Path = ".") -> StudyConfig:
    """Validate a parsed study config; ``where`` names its source in error messages, ``base_dir`` is where
    relative data-file paths start."""
    _unknown(raw, list(_SECTIONS), where, "top level")
    missing = [s for s, required in _SECTIONS.items() if required and s not in raw]
    if missing:
        raise _fail(where, f"missing section{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(f'[{m}]' for m in missing)}")
    study = _table(raw, "study", where)
    _unknown(study, _STUDY_KEYS, where, "study")
    name = study.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(where, f"[study] name must be a non-empty string, got {name!r}")
    description = study.get("description", "")
    if not isinstance(description, str):
        raise _fail(where, f"[study] description must be a string, got {description!r}")
    seeds = study.get("seeds", [0, 1, 2])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise _fail(where, f"[study] seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    baselines = study.get("baselines", list(BASELINES))
    if not isinstance(baselines, list) or not all(b in BASELINES for b in baselines):
        raise _fail(where, f"[study] baselines must be a list drawn from {', '.join(BASELINES)}, got {baselines!r}")
    vfrac = study.get("validation_fraction", 0.2)
    if isinstance(vfrac, bool) or not isinstance(vfrac, (int, float)) or not 0 < vfrac < 1:
        raise _fail(where, f"[study] validation_fraction must be a number in (0, 1), got {vfrac!r}")

    protocol = study.get("protocol", "ensemble")
    if protocol not in PROTOCOLS:
        raise _fail(where, f"[study] protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")

    ensembles = {section: _ensemble(raw, section, where, Path(base_dir)) for section in ("train", "test")}
    if protocol == "trials" and ensembles["train"].n_traj != ensembles["test"].n_traj:
        raise _fail(where, f"[study] protocol = \"trials\" pairs training and test trajectories by index, but [train] "
                           f"has {ensembles['train'].n_traj} and [test] {ensembles['test'].n_traj}; give both the same "
                           "n_traj")
    if ensembles["train"].system != ensembles["test"].system:
        raise _fail(where, f"[test] system {ensembles['test'].system!r} differs from [train] system "
                           f"{ensembles['train'].system!r}")
    if not np.isclose(ensembles["train"].dt, ensembles["test"].dt, rtol=1e-9, atol=0):
        raise _fail(where, f"[test] dt = {ensembles['test'].dt} differs from [train] dt = {ensembles['train'].dt}; "
                           "a learned update is tied to its time step")

    features = dict(_table(raw, "features", where))
    _unknown(features, ("observation", "drive", "parameters"), where, "features")
    try:
        spec = FeatureSpec(system=ensembles["train"].system, observation=features.get("observation", "full"),
                           drive=features.get("drive"), parameters=tuple(features.get("parameters", ())))
    except (ValueError, TypeError) as err:
        raise _fail(where, f"[features] {err}") from None

    models = []
    for label, settings in _table(raw, "models", where).items():
        if not isinstance(settings, Mapping):
            raise _fail(where, f"[models.{label}] must be a table of settings, got {settings!r}")
        settings = dict(settings)
        kind = settings.pop("kind", label)
        if kind not in model_kinds():
            raise _fail(where, f"[models.{label}] unknown model type {kind!r}; set kind to one of "
                               f"{', '.join(model_kinds())}")
        try:
            model_config(kind, **settings)  # every setting checked now, before any work (no TensorFlow)
        except (ValueError, TypeError) as err:
            raise _fail(where, f"[models.{label}] {err}") from None
        models.append(ModelEntry(label=label, kind=kind, settings=settings))
    if not models and not baselines:
        raise _fail(where, "[models] is empty and there are no baselines; name at least one model")

    rollout = dict(_table(raw, "rollout", where)) if "rollout" in raw else {}
    _unknown(rollout, _ROLLOUT_KEYS, where, "rollout")
    context = rollout.get("context")
    if context is not None and (isinstance(context, bool) or not isinstance(context, int) or context < 1):
        raise _fail(where, f"[rollout] context must be an integer >= 1, got {context!r}")
    n_test = _n_steps(ensembles["test"])
    entries = [(b, model_config(b, **baseline_settings(b, spec))) for b in baselines]
    entries += [(m.label, model_config(m.kind, **m.settings)) for m in models]
    for label, config in entries:  # each rollout's context, checked now rather than after simulating
        least = getattr(config, "min_context", 1)  # a config says how many true states its model starts from
        start = context if context is not None else least
        if start < least:
            raise _fail(where, f"[rollout] context = {context} is less than model {label}'s minimum {least} (its "
                               "window or washout); raise it or leave it out")
        if n_test is not None and start >= n_test:
            raise _fail(where, f"[rollout] context {start} (model {label}) leaves no closed-loop step of the test "
                               f"trajectories' {n_test} steps; lengthen [test] or shorten the context")
    valid_fraction = rollout.get("valid_fraction", 0.1)
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) or valid_fraction <= 0:
        raise _fail(where, f"[rollout] valid_fraction must be a number > 0, got {valid_fraction!r}")
    steady = rollout.get("steady_fraction", 1 / 3)
    if isinstance(steady, bool) or not isinstance(steady, (int, float)) or not 0 < steady <= 1:
        raise _fail(where, f"[rollout] steady_fraction must be a number in (0, 1], got {steady!r}")
    group_by = rollout.get("group_by")
    system = ensembles["train"].system
    test_system = _system_of(ensembles["test"])
    if group_by is not None:
        test = ensembles["test"]
        params = test.param_names() if isinstance(test, DataFile) else test.params.spec_names()
        allowed = (*test_system.GROUPINGS, *GROUPINGS, *params)
        if group_by not in allowed:
            raise _fail(where, f"[rollout] group_by = {group_by!r} is not a grouping of the {system} system; "
                               f"choose one of {', '.join(allowed)}")
        if group_by == "training_range" and not spec.parameters:
            raise _fail(where, "[rollout] group_by = \"training_range\" needs parameter-aware models; list them in "
                               "[features] parameters")

    diagnostics = dict(_table(raw, "diagnostics", where)) if "diagnostics" in raw else {}
    _unknown(diagnostics, ["enabled", *DIAGNOSTIC_DEFAULTS], where, "diagnostics")
    if not isinstance(diagnostics.get("enabled", True), bool):
        raise _fail(where, f"[diagnostics] enabled must be true or false, got {diagnostics['enabled']!r}")
    for key, value in diagnostics.items():
        if key == "enabled":
            continue
        least = DIAGNOSTIC_DEFAULTS[key][1]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise _fail(where, f"[diagnostics] {key} must be an integer >= {least}, got {value!r}")
    long_bytes = 8 * 6 * diagnostics.get("long_steps", DIAGNOSTIC_DEFAULTS["long_steps"][0]) * \
        diagnostics.get("long_starts", DIAGNOSTIC_DEFAULTS["long_starts"][0]) * (test_system.n_state + 4)
    try:
        check_memory(long_bytes, "[diagnostics] long_steps x long_starts", "give fewer long_steps or long_starts")
    except ValueError as err:
        raise _fail(where, str(err)) from None

    targets = []
    labels = list(baselines) + [m.label for m in models]
    observe = test_system.OBSERVATIONS[spec.observation]
    observed = tuple(test_system.state_names if observe is None else (test_system.state_names[i] for i in observe))
    computable = summary_figures(test_system, observed)
    train_system = _system_of(ensembles["train"])
    for model in models:  # what a kind needs of the system (a symplectic map: positions and momenta), now
        check = getattr(model_config(model.kind, **model.settings), "check_system", None)
        try:
            if check is not None:
                check(train_system, observed)
        except ValueError as err:
            raise _fail(where, f"[models.{model.label}] {err}") from None
    for label, bounds in (_table(raw, "targets", where) if "targets" in raw else {}).items():
        if label not in labels:
            raise _fail(where, f"[targets] {label!r} is not a model of this study; choose from {', '.join(labels)}")
        if not isinstance(bounds, Mapping):
            raise _fail(where, f"[targets] {label} must be a table such as {{ max_error = 1e-2 }}, got {bounds!r}")
        for metric, bound in bounds.items():
            if metric not in target_metrics():
                raise _fail(where, f"[targets] {label}.{metric} is not a metric; choose from "
                                   f"{', '.join(target_metrics())}")
            if metric not in computable:
                raise _fail(where, f"[targets] {label}.{metric} is not computed by this study (the {system} system "
                                   f"observed as {', '.join(observed)}); it computes {', '.join(computable)}")
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
                raise _fail(where, f"[targets] {label}.{metric} must be a number > 0, got {bound!r}")
            targets.append((label, metric, float(bound)))

    return StudyConfig(name=name, description=description, seeds=tuple(seeds), baselines=tuple(baselines),
                       validation_fraction=float(vfrac), features=spec, train=ensembles["train"],
                       test=ensembles["test"], models=tuple(models), context=context,
                       valid_fraction=float(valid_fraction), source=dict(raw), group_by=group_by,
                       steady_fraction=float(steady), targets=tuple(targets), computable=computable,
                       diagnostics=diagnostics, protocol=protocol)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate ``studies/NAME.toml``, or a resolved study saved as JSON (a sweep's trial)."""
    p = Path(path)
    if not p.is_file():
        raise StudyConfigError(f"no such study config: '{p}'")
    try:
        raw = json.loads(p.read_text()) if p.suffix == ".json" else tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise StudyConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {err}") from None
    return replace(study_from_dict(raw, str(p), base_dir=p.parent), path=str(p.resolve()))
