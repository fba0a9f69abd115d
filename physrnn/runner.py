"""The study runner: simulate → train (every model, every seed) → rollout → evaluate → report.

Every stage writes its output under ``ROOT/cache/<stage>/<key>`` where ``key`` hashes exactly the inputs that
determine it (:func:`physrnn.study.stage_key`), through a temporary name renamed on completion. A re-run
skips every stage whose output exists, so an interrupted study resumes where it stopped and a change to one
model's settings retrains that model alone. Reports go to ``ROOT/reports/<study name>/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simulators.ensemble import simulate_to_file
from simulators.trajectory_file import read_trajectories, software_versions

from .analysis import groups_of
from .data import build_step_data, split_by_trajectory
from .evaluation import evaluate_rollout, rollout_to_file
from .models import build_model, load_model
from .report import write_atomic
from .study import ModelEntry, StudyConfig, stage_key

__all__ = ["check_targets", "prepare_data", "run_study", "save_result", "summarise"]


def _entries(study: StudyConfig) -> list[ModelEntry]:
    # Under position-only observation the linear baseline sees two past positions: one position cannot fix
    # the state, two do (and the map is exact for a linear system), so window 1 would be a strawman.
    linear = {"window": 2} if study.features.observation == "position" else {}
    baselines = [ModelEntry(label=b, kind=b, settings=linear if b == "linear" else {}) for b in study.baselines]
    return baselines + list(study.models)


def prepare_data(study: StudyConfig, root: str | Path = "data",
                 log: Callable[[str], None] = print) -> dict[str, tuple[str, Path]]:
    """Simulate the study's training and test ensembles under ``ROOT/cache/simulate`` unless they exist;
    returns ``{"train": (key, path), "test": (key, path)}``."""
    (Path(root) / "cache" / "simulate").mkdir(parents=True, exist_ok=True)
    files = {}
    for part, config in (("train", study.train), ("test", study.test)):
        key = stage_key("simulate", config.to_dict())
        path = Path(root) / "cache" / "simulate" / f"{key}.h5"
        if path.exists():
            log(f"[simulate] {part}: cached {path}")
        else:
            log(f"[simulate] {part}: {config.n_traj} trajectories -> {path}")
            simulate_to_file(config, path)
        files[part] = (key, path)
    return files


def run_study(study: StudyConfig, *, root: str | Path = "data", log: Callable[[str], None] = print,
              fit_verbose: int = 0) -> dict[str, Any]:
    """Run (or resume) every stage of ``study``.

    Returns everything a report needs: the resolved config, provenance, one row per (model, seed) and a
    summary per model (see :func:`summarise`).
    """
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
    groups = groups_of(study.group_by, test_tr.params, train_params=train_tr.params,
                       parameters=study.features.parameters)

    rows = []
    for entry in _entries(study):
        prototype = build_model(entry.kind, **entry.settings)
        # A model that learns is trained once per seed (its split, and its own seed if it has one).
        for seed in (study.seeds if prototype.learns else (None,)):
            config, settings = prototype.config, dict(entry.settings)
            if seed is not None and "seed" in {f.name for f in fields(config)}:
                config, settings["seed"] = replace(config, seed=seed), seed
            split_seed = 0 if seed is None else seed
            model_key = stage_key("train", entry.kind, settings, study.features.to_config(), files["train"][0],
                                  split_seed, study.validation_fraction)
            model_path = cache / "models" / f"{model_key}.keras"
            name = entry.label + ("" if seed is None else f" seed {seed}")
            if model_path.exists():
                model = load_model(model_path)
                note(f"[train] {name}: cached")
            else:
                fractions = (1 - study.validation_fraction, study.validation_fraction)
                tr_idx, val_idx = split_by_trajectory(train_all.n_traj, fractions, seed=split_seed)
                note(f"[train] {name}: {entry.kind} {settings}")
                model = type(prototype)(config).fit(train_all.take(tr_idx), train_all.take(val_idx),
                                                    verbose=fit_verbose)
                model.provenance_ = {"data_file": str(files["train"][1]), "split_seed": split_seed,
                                     "split": {"train": tr_idx.tolist(), "validation": val_idx.tolist(), "test": []}}
                model.save(model_path)
            roll_key = stage_key("rollout", model_key, files["test"][0], study.context)
            roll_path = cache / "rollouts" / f"{roll_key}.h5"
            if not roll_path.exists():
                note(f"[rollout] {name}: {test_tr.n_traj} test trajectories")
                rollout_to_file(model, test_tr, files["test"][1], np.arange(test_tr.n_traj), roll_path,
                                model_file=model_path, context=study.context, selection="test")
            metrics = evaluate_rollout(str(roll_path), study.valid_fraction, truth=test_tr, groups=groups,
                                       steady_fraction=study.steady_fraction)
            note(f"[evaluate] {name}: RMSE " + ", ".join(f"{c} {v:.3g}" for c, v in zip(metrics["components"],
                                                                                    metrics["rmse"]))
                 + f"; valid time {metrics['valid_time_median']:.1f} of {metrics['horizon']:.1f}")
            rows.append({"label": entry.label, "kind": entry.kind, "seed": seed, "settings": settings,
                         "model_file": str(model_path), "rollout_file": str(roll_path),
                         "fit_seconds": model.fit_seconds_, "history": model.history_, **metrics})
    return {"study": study.name, "description": study.description, "config": study.to_dict(),
            "train_file": str(files["train"][1]), "test_file": str(files["test"][1]),
            "software": software_versions(), "seconds": time.perf_counter() - started, "rows": rows,
            "summary": summarise(rows), "groups": {k: v.tolist() for k, v in groups.items()},
            "physics_exact": rows[0].get("physics_exact"), "targets": check_targets(study, rows), "log": lines}


def check_targets(study: StudyConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each [targets] bound against the model's worst seed (and worst component); NaN (divergence) fails."""
    out = []
    for label, metric, bound in study.targets:
        values = []
        for r in (r for r in rows if r["label"] == label):
            value = r.get(metric, r.get("physics", {}).get(metric))
            if value is None:
                raise ValueError(f"target {label}.{metric}: this study does not compute {metric}")
            values.append(float(np.max(value)))
        worst = float(np.max(values))  # NaN if any seed diverged
        out.append({"label": label, "metric": metric, "bound": bound, "worst": worst, "met": bool(worst <= bound)})
    return out


def _spread(values: list[Any]) -> tuple[Any, Any]:
    """Mean and std over seeds (elementwise for per-component lists); NaN stays NaN."""
    a = np.array(values, dtype=float)
    return a.mean(axis=0).tolist(), a.std(axis=0).tolist()


def _scores(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of every score the runs share (a whole test set, or one group of it)."""
    out: dict[str, Any] = {"n_traj": runs[0]["n_traj"]}
    for key in ("rmse", "nrmse", "valid_time_median", "valid_periods_median", "energy_error"):
        if key in runs[0]:
            out[f"{key}_mean"], out[f"{key}_std"] = _spread([r[key] for r in runs])
    out["max_error"] = float(np.max([max(r["max_error"]) for r in runs]))
    if "physics" in runs[0]:
        out["physics"] = {k: _spread([r["physics"][k] for r in runs])
                          for k in runs[0]["physics"] if k != "kind"}
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per model: mean and spread (std over seeds, 0 for a single run) of each score, overall and
    per group of test trajectories."""
    out = []
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        entry = {"label": label, "kind": mine[0]["kind"], "n_seeds": len(mine), "components": mine[0]["components"],
                 "horizon": mine[0]["horizon"], "diverged": int(sum(r["diverged"] for r in mine)),
                 "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in mine])), **_scores(mine)}
        if "physics" in mine[0]:
            entry["physics_kind"] = mine[0]["physics"]["kind"]
        entry["groups"] = {g: _scores([r["groups"][g] for r in mine]) for g in mine[0].get("groups", {})}
        out.append(entry)
    return out


def save_result(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(result, indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
