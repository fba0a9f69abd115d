"""The study runner: simulate → train (every model, every seed) → rollout → evaluate → report.

Every stage writes its output under ``ROOT/cache/<stage>/<key>`` where ``key`` hashes exactly the inputs that
determine it (:func:`physrnn.study.stage_key`), through a temporary name renamed on completion. A re-run
skips every stage whose output exists, so an interrupted study resumes where it stopped and a change to one
model's settings retrains that model alone. Reports go to ``ROOT/reports/<study name>/``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from simulators.ensemble import EnsembleConfig, simulate_to_file
from simulators.trajectory_file import read_trajectories, software_versions

from .analysis import groups_of
from .cache import code_fingerprint, model_module, store, usable
from .data import FeatureSpec, build_step_data, split_by_trajectory
from .diagnostics import diagnose, exact_exponents, long_truth, target_figures, target_value
from .evaluation import evaluate, read_rollout, write_rollout
from .figures import FigureInputs, collect_figures
from .metrics import attractor_exponent
from .models import Rollout, load_model, model_class, model_config
from .results import RunResult, StudyResult, TargetCheck
from .study import (DataFile, ModelEntry, StudyConfig, baseline_settings, load_study, stage_key, study_from_dict,
                    target_metrics)

__all__ = ["check_targets", "data_key", "truth_facts", "model_key", "prepare_data", "rollout_key", "run_study"]


def _entries(study: StudyConfig) -> list[ModelEntry]:
    baselines = [ModelEntry(label=b, kind=b, settings=baseline_settings(b, study.features)) for b in study.baselines]
    return baselines + list(study.models)


def data_key(ensemble: EnsembleConfig | DataFile) -> str:
    """The cache key of a study's ensemble: its whole config and the simulators' code, or the content of the
    user's file."""
    if isinstance(ensemble, DataFile):
        return stage_key("file", ensemble.fingerprint)
    return stage_key("simulate", ensemble.to_dict(), code_fingerprint("simulate"))


def model_key(kind: str, config: Any, features: FeatureSpec, train_key: str, split_seed: int,
              validation_fraction: float, trial: int | None = None) -> str:
    """The cache key of a trained model: its kind and every field of its resolved config (so a changed default
    retrains it), the features, the training data's key, the split (seed and validation fraction; in a study of
    trials, the trial) and the code that trains and rolls out models (:func:`physrnn.cache.code_fingerprint`)."""
    split = (split_seed, validation_fraction) if trial is None else (split_seed, validation_fraction, {"trial": trial})
    return stage_key("train", kind, asdict(config), features.to_config(), train_key, *split,
                     code_fingerprint("train", model_module(model_class(kind))))


def rollout_key(model_key: str, test_key: str, context: int | None) -> str:
    """The cache key of a rollout: the model, the test data and the context."""
    return stage_key("rollout", model_key, test_key, context)


def prepare_data(study: StudyConfig, root: str | Path = "data",
                 log: Callable[[str], None] = print) -> dict[str, tuple[str, Path]]:
    """Simulate the study's training and test ensembles under ``ROOT/cache/simulate`` unless they exist (a data
    file given in the study is used where it is); returns ``{"train": (key, path), "test": (key, path)}``."""
    (Path(root) / "cache" / "simulate").mkdir(parents=True, exist_ok=True)
    files = {}
    for part, config in (("train", study.train), ("test", study.test)):
        key = data_key(config)
        if isinstance(config, DataFile):
            path = Path(config.path)
            log(f"[data] {part}: {path}")
        else:
            path = Path(root) / "cache" / "simulate" / f"{key}.h5"
            if usable(path, config.system, f"[simulate] {part}", log):
                log(f"[simulate] {part}: cached {path}")
            else:
                log(f"[simulate] {part}: {config.n_traj} trajectories -> {path}")
                store(path, config.system, lambda staging, config=config: simulate_to_file(config, staging))
        files[part] = (key, path)
    return files


def run_study(study: StudyConfig | str | Path | Mapping[str, Any], *, root: str | Path = "data",
              log: Callable[[str], None] = print, fit_verbose: int = 0) -> StudyResult:
    """Run (or resume) every stage of ``study`` and return its result.

    ``study`` is a :class:`~physrnn.study.StudyConfig`, the path of a study's TOML (or resolved JSON), or the
    same tables as a dict (``{"study": {...}, "train": {...}, ...}``).

    Every learning model is trained once per seed, every model rolled out closed-loop from the test starts and
    scored in memory; models and rollouts are cached under ``ROOT/cache`` so a re-run skips finished stages.
    """
    if isinstance(study, Mapping):
        study = study_from_dict(study, "the study")
    elif not isinstance(study, StudyConfig):
        study = load_study(study)
    lines: list[str] = []

    def note(message: str) -> None:  # shown as it happens and kept for the stored log
        lines.append(f"{time.strftime('%H:%M:%S')} {message}")
        log(message)

    root = Path(root)
    cache = root / "cache"
    for sub in ("models", "rollouts"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    files = prepare_data(study, root, log=note)
    train_tr, test_tr = read_trajectories(files["train"][1]), read_trajectories(files["test"][1])
    train_all = build_step_data(train_tr, study.features)
    test = build_step_data(test_tr, study.features)
    groups = groups_of(study.group_by, test_tr.params, system=test.system, train_params=train_tr.params,
                       parameters=study.features.parameters)

    runs, first_rollouts = [], {}
    long_data = _long_data(test, study, note)
    exponents: dict[int, np.ndarray] = {}  # the exact Lyapunov exponents, once per closed-loop start
    for entry in _entries(study):
        cls = model_class(entry.kind)
        prototype = model_config(entry.kind, **entry.settings)
        # A model that learns is trained once per seed (its split, and its own seed if it has one).
        for seed in (study.seeds if cls.learns else (None,)):
            config, settings = prototype, dict(entry.settings)
            if seed is not None and "seed" in {f.name for f in fields(config)}:
                config, settings["seed"] = replace(config, seed=seed), seed
            split_seed = 0 if seed is None else seed
            name = entry.label + ("" if seed is None else f" seed {seed}")
            trials = range(test.n_traj) if study.protocol == "trials" and cls.learns else [None]
            fitted = [_fit_and_roll(cls, entry, config, settings, study, files, train_all, test, test_tr, split_seed,
                                    name if trial is None else f"{name} trial {trial}", trial, cache, fit_verbose,
                                    note) for trial in trials]
            model, model_path, roll_path, rollout = fitted[0]
            if len(fitted) > 1:  # one model per trial, each forecasting its own test trajectory
                rollout = _joined([f[3] for f in fitted])
                model.fit_seconds_ = float(np.mean([f[0].fit_seconds_ for f in fitted]))
            first_rollouts.setdefault(entry.label, rollout)
            scores = evaluate(rollout, test, valid_fraction=study.valid_fraction, groups=groups,
                              steady_fraction=study.steady_fraction, model=entry.kind)
            summary = scores.summary()
            note(f"[evaluate] {name}: RMSE " + ", ".join(f"{c} {v:.3g}" for c, v in zip(scores.components,
                                                                                    summary["rmse"]))
                 + f"; valid time {summary['valid_time_median']:.1f} of {scores.horizon:.1f}")
            runs.append(RunResult(label=entry.label, kind=entry.kind, seed=seed, settings=settings, scores=scores,
                                  fit_seconds=model.fit_seconds_, history=model.history_, model_file=str(model_path),
                                  rollout_file=str(roll_path),
                                  diagnostics=_diagnostics(model, test, rollout, study, long_data, exponents,
                                                            name, note),
                                  identified=model.against_truth(test) if hasattr(model, "against_truth")
                                  and _diagnosable(test) else {}))
    figures = collect_figures(FigureInputs(first_rollouts, test, tuple(test_tr.state_units)))
    truth = {"train": truth_facts(train_tr), "test": truth_facts(test_tr)}
    if first_rollouts and any("valid_lyapunov_times" in r.scores.per_trajectory for r in runs):
        c = next(iter(first_rollouts.values())).context  # the closed-loop start every metric was read from
        estimate = attractor_exponent(test.system, test.observed[:, c], test.time[c])
        truth["test"]["lyapunov_exponent"] = estimate.exponent.tolist()
        truth["test"]["lyapunov_stderr"] = estimate.stderr.tolist()
    return StudyResult(name=study.name, description=study.description, config=study.to_dict(), runs=tuple(runs),
                       targets=check_targets(study, runs), groups={k: v.tolist() for k, v in groups.items()},
                       figures=figures, truth=truth, train_file=str(files["train"][1]),
                       test_file=str(files["test"][1]),
                       software=software_versions(), seconds=time.perf_counter() - started, log=tuple(lines),
                       study_file=study.path)


def _fit_and_roll(cls, entry, config, settings, study, files, train_all, test, test_tr, split_seed, name, trial,
                  cache, fit_verbose, note):
    """The model (trained, or read from the cache) and its rollout of the test trajectories, or, in a study of
    trials, of trial ``trial``'s: (model, its file, the rollout's file, the rollout)."""
    key = model_key(entry.kind, config, study.features, files["train"][0], split_seed, study.validation_fraction,
                    trial)
    model_path = cache / "models" / f"{key}.keras"
    if usable(model_path, entry.kind, f"[train] {name}", note):
        model = load_model(model_path)
        note(f"[train] {name}: cached")
    else:
        model = cls(config)
        if trial is None:
            fractions = (1 - study.validation_fraction, study.validation_fraction)
            tr_idx, val_idx = split_by_trajectory(train_all.n_traj, fractions, seed=split_seed)
            train, validation = train_all.take(tr_idx), train_all.take(val_idx)
            split = {"train": tr_idx.tolist(), "validation": val_idx.tolist(), "test": []}
        else:  # its own trajectory; a model that validates holds back the trajectory's end
            train = validation = train_all.take([trial])
            cut = train.time.size
            if model.uses_validation():
                cut = train.time.size - max(2, round(study.validation_fraction * train.time.size))
                train, validation = train.steps(0, cut), train.steps(cut)
            else:
                validation = None
            split = {"train": [trial], "validation": [trial] if validation is not None else [], "test": [trial],
                     "train_steps": cut}
        note(f"[train] {name}: {entry.kind} {settings}")
        model.fit(train, validation, verbose=fit_verbose)
        model.provenance_ = {"data_file": str(files["train"][1]), "split_seed": split_seed, "split": split}
        store(model_path, entry.kind, model.save)
    index = np.arange(test_tr.n_traj) if trial is None else np.array([trial])
    roll_path = cache / "rollouts" / f"{rollout_key(key, files['test'][0], study.context)}.h5"
    if usable(roll_path, f"rollout:{entry.kind}", f"[rollout] {name}", note):
        rollout = read_rollout(roll_path)
    else:
        note(f"[rollout] {name}: {index.size} test trajector{'y' if index.size == 1 else 'ies'}")
        rollout = model.rollout(test.take(index), context=study.context)
        store(roll_path, f"rollout:{entry.kind}",
              lambda staging: write_rollout(rollout, test_tr, files["test"][1], index, staging, kind=model.kind,
                                            state_names=test.state_names, model_file=model_path,
                                            selection="test"))
    return model, model_path, roll_path, rollout


def _joined(rollouts: list[Rollout]) -> Rollout:
    """The trials' rollouts (one trajectory each, the same times and context) as one."""
    first = rollouts[0]
    return Rollout(time=first.time, observed=np.concatenate([r.observed for r in rollouts]), context=first.context,
                   diverged=np.concatenate([r.diverged for r in rollouts]),
                   diverged_at=np.concatenate([r.diverged_at for r in rollouts]),
                   bound=max(r.bound for r in rollouts), seconds=sum(r.seconds for r in rollouts))


def _diagnosable(test) -> bool:
    return test.system is not None and test.n_obs == test.system.n_state


def _long_data(test, study, note):
    """The truth of the long runs, shared by every model (None: none asked for, or not diagnosable)."""
    settings = study.diagnostic_settings()
    if not settings["enabled"] or not settings["long_steps"] or not _diagnosable(test):
        return None
    note(f"[diagnose] truth of the long runs: {settings['long_starts']} test starts, {settings['long_steps']} steps")
    return long_truth(test, n_steps=settings["long_steps"], starts=settings["long_starts"])


def _diagnostics(model, test, rollout, study, long_data, exponents, name, note) -> dict[str, Any]:
    """The summary of :func:`physrnn.diagnostics.diagnose`, or ``{"skipped": why}``; ``exponents`` keeps the
    exact Lyapunov exponents by closed-loop start, shared by the models starting there."""
    settings = study.diagnostic_settings()
    if not settings["enabled"]:
        return {"skipped": "turned off ([diagnostics] enabled = false)"}
    if not _diagnosable(test):
        return {"skipped": "the diagnostics need the full state observed"}
    note(f"[diagnose] {name}: step Jacobians, equilibria, increments"
         + (f", {settings['long_steps']} closed-loop steps" if long_data is not None else ""))
    try:
        if rollout.context not in exponents:
            exponents[rollout.context] = exact_exponents(test, rollout.context)
        return diagnose(model, test, points=settings["points"], increment_points=settings["increment_points"],
                        long_steps=0, long=long_data, rollout=rollout, lyapunov=exponents[rollout.context],
                        valid_fraction=study.valid_fraction).summary()
    except NotImplementedError as err:
        return {"skipped": str(err)}


def truth_facts(trajectories) -> dict[str, Any]:
    """How a data file's states were computed: ``truth`` (exact, reference or numerical), and for a reference
    its integrator, tolerances and certificate (see :mod:`simulators.ensemble`)."""
    attrs = trajectories.attrs
    out = {"truth": attrs.get("truth", "exact" if trajectories.method == "exact" else trajectories.method),
           "method": trajectories.method}
    for key in ("integrator", "rtol", "atol", "certificate"):
        if key in attrs:
            out[key] = attrs[key]
    return out


def check_targets(study: StudyConfig, runs: list[RunResult]) -> tuple[TargetCheck, ...]:
    """Each [targets] bound against the model's worst seed (and worst component); NaN (divergence) fails.

    "Worst" is the largest value for a figure where smaller is better, the smallest where larger is.
    """
    better = target_metrics()
    out = []
    for label, metric, bound in study.targets:
        values = []
        for run in (r for r in runs if r.label == label):
            summary = run.scores.summary()
            value = summary.get(metric, summary.get("physics", {}).get(metric))
            if value is None and metric in target_figures():  # read from the step map itself (NaN: unreadable)
                value = target_value(run.diagnostics, metric)
                value = np.nan if value is None else value
            if value is None:
                raise ValueError(f"target {label}.{metric}: this study does not compute {metric}")
            values.append(float(np.max(value)) if better[metric] == "min" else float(np.min(value)))
        direction = better[metric]
        worst = float(np.max(values) if direction == "min" else np.min(values))  # NaN if any seed diverged
        met = worst <= bound if direction == "min" else worst >= bound
        out.append(TargetCheck(label=label, metric=metric, bound=bound, worst=worst, met=bool(met), better=direction))
    return tuple(out)
