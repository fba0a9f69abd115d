r"""Sweeps: one base study, the axes to vary, every trial a task on a Dask cluster in a fresh process.

A sweep config (``studies/sweeps/NAME.toml``) names a base study and the axes to vary; each trial is the base
study cut down to one model, one seed and no baselines, with the axes' values applied. The objective is a
closed-loop figure of the rollouts from the study's held-out test starts (never the one-step loss).

.. code-block:: toml

    [sweep]
    name = "esn-eigen"
    description = "Reservoir settings for the eigen flow."
    study = "../eigen.toml"        # the base study, relative to this file
    model = "esn"                  # the base study's model the axes override (default: its first)
    objective = "rmse"             # see objectives(); a per-component figure is taken at its worst component
    sample = "grid"                # or "random": n_samples points drawn from `seed`
    # n_samples = 12
    # seed = 0

    [axes]                         # every combination (grid), or a list to draw from (random)
    spectral_radius = [0.8, 0.95]  # any setting of the model type
    ridge = [1e-8, 1e-6]           # random sampling also takes { uniform = [lo, hi] } or { loguniform = [lo, hi] }
    seed = [0, 1, 2]               # always crossed with every point (default: the base study's seeds)
    # dt = [0.05, 0.1]             # the time step of the training and test data
    # kind = ["gru", "esn"]        # the model type; settings for one type only go in [axes.gru], [axes.esn]

    [target]                       # optional: the best point must beat a baseline of the base study
    baseline = "rk4"               # by this factor in the objective (its worst seed against the baseline),
    factor = 10                    # at this time step (one of the dt axis, or the base study's)
    dt = 0.5

A ``dt`` axis keeps every ensemble's duration, so a smaller Δt means more steps. Training cost grows with the
number of steps, so ``train_steps`` may cap it: the training trajectories are cut to ``train_steps`` steps
where Δt is small (their starts and parameters unchanged), while the test keeps its duration and so its
horizon. Cut them only to a duration that still covers each orbit: the model sees the same states, more finely.

With a ``dt`` axis the report also draws the objective against Δt on log–log axes for every baseline and
model type (the best point of each type at each Δt), with the fitted slope of each: 1 for Euler, 4 for RK4.

Trial ``ID`` (a hash of its resolved study) lives in ``ROOT/sweeps/NAME/trials/ID/``: ``study.json`` (the
resolved study: ``physrnn study .../study.json`` retrains it alone and gives the same numbers),
``result.json`` (its metrics, or its error) and ``trial.log``. Models, rollouts and data are cached under
``ROOT/cache`` as for any study. A re-run skips every trial with a result; a failed trial runs again.

On a cluster each trial runs in a new process, so no TensorFlow state or memory passes from one trial to the
next. On Linux that process is forked from a launcher (``python -m physrnn.sweep --serve``, one per worker
thread) that has imported TensorFlow once but never run it, which saves each trial about 5 s of CPU; elsewhere,
or with ``start="exec"``, it is a new interpreter (``python -m physrnn.sweep TRIAL_DIR ROOT``). A trial that
raises is recorded as failed, with its error, and the sweep goes on; a trial whose process dies (killed, out of
memory), or whose launcher or worker dies, is retried.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .metrics import METRICS
from .models.configs import model_kinds
from .study import (BASELINES, StudyConfig, StudyConfigError, load_study, stage_key, study_from_dict,
                    target_metrics)

__all__ = ["SweepConfig", "check_target", "objectives", "Trial", "load_sweep", "objective_of", "rank", "run_sweep", "run_trial",
           "sweep_from_dict"]



def objectives() -> dict[str, str]:
    """Figures a sweep may rank trials by, and which way is better: every summary figure of the metric and
    analysis registries (the base study must compute the one chosen)."""
    return target_metrics()

_SPECIAL_AXES = ("kind", "seed", "dt")
_SWEEP_KEYS = ("name", "description", "study", "model", "objective", "sample", "n_samples", "seed", "train_steps")
RETRIES = 2  # a trial whose process or worker dies is run up to 1 + RETRIES times


@dataclass(frozen=True)
class Trial:
    """One trial: the axes' values, its seed, and the resolved study it runs."""

    id: str
    values: Mapping[str, Any]  # every axis, the seed included
    point: str  # the values without the seed: the trials of one point differ only in their seed
    study: Mapping[str, Any]

    @property
    def seed(self) -> int:
        return self.values["seed"]


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep (see the module docstring for the file layout)."""

    name: str
    description: str
    study_file: str
    base: StudyConfig
    model: str
    objective: str
    sample: str
    n_samples: int | None
    seed: int
    axes: Mapping[str, Any]
    trials: tuple[Trial, ...]
    baselines: tuple[Mapping[str, Any], ...]  # one study of the base study's baselines per time step
    target: Mapping[str, Any] | None = None  # {"baseline", "factor", "dt"}
    train_steps: int | None = None  # with a dt axis, at most this many steps per training trajectory

    @property
    def direction(self) -> str:
        return objectives()[self.objective]

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": {"name": self.name, "description": self.description, "study": self.study_file,
                          "model": self.model, "objective": self.objective, "sample": self.sample,
                          **({"n_samples": self.n_samples, "seed": self.seed} if self.sample == "random" else {}),
                          **({"train_steps": self.train_steps} if self.train_steps is not None else {})},
                "axes": dict(self.axes), **({"target": dict(self.target)} if self.target else {})}


def _fail(where: str, message: str) -> StudyConfigError:
    return StudyConfigError(f"{where}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _axis_values(name: str, spec: Any, sample: str, n: int | None, seed: int, where: str) -> list[Any]:
    """The values an axis takes: its list (grid), or ``n`` draws from its own stream (random)."""
    if sample == "grid" or name == "seed":
        if not isinstance(spec, list) or not spec:
            how = "the seeds to cross with every point" if name == "seed" else "the values of the grid"
            raise _fail(where, f"[axes] {name} must be a non-empty list ({how}), got {spec!r}")
        if len(set(map(repr, spec))) != len(spec):
            raise _fail(where, f"[axes] {name} lists a value twice: {spec!r}")
        return list(spec)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])  # one stream per axis, as for ensembles
    if isinstance(spec, list) and spec:
        return [spec[i] for i in rng.integers(len(spec), size=n)]
    if isinstance(spec, Mapping) and len(spec) == 1 and next(iter(spec)) in ("uniform", "loguniform"):
        kind, bounds = next(iter(spec.items()))
        if (not isinstance(bounds, list) or len(bounds) != 2 or not all(map(_is_number, bounds))
                or not bounds[0] < bounds[1] or (kind == "loguniform" and bounds[0] <= 0)):
            raise _fail(where, f"[axes] {name} = {{ {kind} = {bounds!r} }} needs [lo, hi] with lo < hi"
                               + (" and lo > 0" if kind == "loguniform" else ""))
        lo, hi = (math.log(b) for b in bounds) if kind == "loguniform" else bounds
        draws = rng.uniform(lo, hi, size=n)
        return [float(math.exp(d) if kind == "loguniform" else d) for d in draws]
    raise _fail(where, f"[axes] {name} must be a list to draw from, or {{ uniform = [lo, hi] }} or "
                       f"{{ loguniform = [lo, hi] }}, got {spec!r}")


def _label(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()) or "base"


def _trial_study(base: StudyConfig, model: str, values: Mapping[str, Any], sweep_name: str,
                 train_steps: int | None = None) -> dict[str, Any]:
    """The base study, resolved, cut down to the trial's model and seed, with the axes' values applied."""
    raw = base.to_dict()
    entry = next(m for m in base.models if m.label == model)
    kind = values.get("kind", entry.kind)
    # A model type's base settings: the swept model's if it is of that type, else the base study's first model
    # of that type, else the type's defaults.
    same = [m for m in base.models if m.kind == kind]
    settings = dict(entry.settings if entry.kind == kind else (same[0].settings if same else {}))
    settings.update({k: v for k, v in values.items() if k not in _SPECIAL_AXES})
    raw["models"] = {kind: {"kind": kind, **settings}}
    raw["study"].update(seeds=[values["seed"]], baselines=[])
    raw.pop("targets", None)
    # A trial is judged by its rollouts' objective; reading its step map (10⁵-step runs among it) is a study's job.
    raw["diagnostics"] = {**raw.get("diagnostics", {}), "enabled": False}
    if "dt" in values:
        _set_dt(raw, values["dt"], train_steps)
    raw["study"]["name"] = f"{sweep_name}-{stage_key('trial', raw)}"
    return raw


def _set_dt(raw: dict[str, Any], dt: float, train_steps: int | None = None) -> None:
    for part in ("train", "test"):
        ensemble = raw[part]
        if ensemble.get("n_steps") is not None:  # keep the duration, not the number of steps
            ensemble["t_end"] = ensemble["dt"] * (ensemble.pop("n_steps") - 1)
        ensemble["dt"] = dt
        if part == "train" and train_steps is not None and ensemble["t_end"] > dt * train_steps:
            ensemble["t_end"] = dt * train_steps


def sweep_from_dict(raw: Mapping[str, Any], where: str = "sweep", base_dir: str | Path = ".") -> SweepConfig:
    """Validate a parsed sweep config and enumerate its trials; ``base_dir`` resolves the base study's path."""
    extra = sorted(set(raw) - {"sweep", "axes", "target"})
    if extra or "sweep" not in raw or not isinstance(raw["sweep"], Mapping):
        raise _fail(where, "a sweep config has a [sweep] table, an [axes] table and optionally a [target] table"
                           + (f"; unknown: {', '.join(extra)}" if extra else ""))
    head = raw["sweep"]
    unknown = sorted(set(head) - set(_SWEEP_KEYS))
    if unknown:
        raise _fail(where, f"[sweep] unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; allowed: "
                           f"{', '.join(_SWEEP_KEYS)}")
    name = head.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise _fail(where, f"[sweep] name must be a non-empty string without '/', got {name!r}")
    if not isinstance(head.get("study"), str):
        raise _fail(where, "[sweep] study must name the base study's config, e.g. study = \"../eigen.toml\"")
    study_file = Path(base_dir) / head["study"]
    base = load_study(study_file)
    labels = [m.label for m in base.models]
    model = head.get("model", labels[0] if labels else None)
    if model not in labels:
        raise _fail(where, f"[sweep] model = {model!r} is not a model of {study_file}; choose from "
                           f"{', '.join(labels)}")
    objective = head.get("objective", "rmse")
    if objective not in objectives():
        raise _fail(where, f"[sweep] objective = {objective!r} is not a closed-loop figure; choose from "
                           f"{', '.join(objectives())}")
    if objective not in base.computable:
        raise _fail(where, f"[sweep] objective = {objective!r} is not computed for this study; choose from "
                           f"{', '.join(base.computable)}")
    sample = head.get("sample", "grid")
    if sample not in ("grid", "random"):
        raise _fail(where, f"[sweep] sample must be \"grid\" or \"random\", got {sample!r}")
    n_samples, seed = head.get("n_samples"), head.get("seed", 0)
    if sample == "random" and (not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1):
        raise _fail(where, f"[sweep] sample = \"random\" needs n_samples, a positive integer, got {n_samples!r}")
    if sample == "grid" and n_samples is not None:
        raise _fail(where, "[sweep] n_samples applies to sample = \"random\" only")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _fail(where, f"[sweep] seed must be an integer >= 0, got {seed!r}")
    train_steps = head.get("train_steps")
    if train_steps is not None and (not isinstance(train_steps, int) or isinstance(train_steps, bool)
                                    or train_steps < 2):
        raise _fail(where, f"[sweep] train_steps must be an integer >= 2 (steps per training trajectory), "
                           f"got {train_steps!r}")
    if train_steps is not None and "dt" not in raw.get("axes", {}):
        raise _fail(where, "[sweep] train_steps applies with a dt axis only; add [axes] dt or remove it")

    axes = dict(raw.get("axes", {}))
    kinds_given = axes.get("kind")
    learners = [k for k in model_kinds() if k not in BASELINES]
    per_kind = {k: axes.pop(k) for k in list(axes) if k in model_kinds() and isinstance(axes[k], Mapping)}
    if "seed" not in axes:
        axes["seed"] = list(base.seeds)
    draw = {name: _axis_values(name, spec, sample, n_samples, seed, where) for name, spec in axes.items()}
    if "kind" in draw and any(k not in model_kinds() for k in draw["kind"]):
        raise _fail(where, f"[axes] kind takes model types ({', '.join(learners)}), got {kinds_given!r}")
    kind_list = list(dict.fromkeys(draw.get("kind", [next(m.kind for m in base.models if m.label == model)])))
    for kind in per_kind:
        if kind not in kind_list:
            raise _fail(where, f"[axes.{kind}] applies to {kind} models, but the sweep's models are "
                               f"{', '.join(kind_list)}")
    per_kind_draw = {kind: {n: _axis_values(n, s, sample, n_samples, seed, f"{where} [axes.{kind}]")
                            for n, s in table.items()} for kind, table in per_kind.items()}
    if "dt" in draw and not all(_is_number(d) and d > 0 for d in draw["dt"]):
        raise _fail(where, f"[axes] dt must hold positive numbers, got {axes['dt']!r}")

    seeds = draw.pop("seed")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise _fail(where, f"[axes] seed must list integers >= 0, got {seeds!r}")
    points: list[dict[str, Any]] = []
    if sample == "grid":
        for combo in itertools.product(*draw.values()):
            common = dict(zip(draw, combo))
            own = per_kind_draw.get(common.get("kind", kind_list[0]), {})
            for extra_combo in itertools.product(*own.values()):
                points.append({**common, **dict(zip(own, extra_combo))})
    else:
        for i in range(n_samples):
            common = {k: v[i] for k, v in draw.items()}
            own = per_kind_draw.get(common.get("kind", kind_list[0]), {})
            points.append({**common, **{k: v[i] for k, v in own.items()}})
    points = list({json.dumps(p, sort_keys=True): p for p in points}.values())  # random draws may repeat

    trials = []
    for point in points:
        for s in seeds:
            values = {**point, "seed": s}
            raw_study = _trial_study(base, model, values, name, train_steps)
            try:
                study_from_dict(raw_study, f"trial {_label(values)}")
            except StudyConfigError as err:
                raise _fail(where, str(err)) from None
            trials.append(Trial(id=stage_key("trial", raw_study), values=values, point=_label(point),
                                study=raw_study))
    baselines = []
    if base.baselines:
        for dt in draw.get("dt", [None]):
            raw_base = base.to_dict()
            raw_base["models"] = {}
            raw_base["study"].update(seeds=[base.seeds[0]])
            raw_base.pop("targets", None)
            if dt is not None:
                _set_dt(raw_base, dt, train_steps)
            raw_base["study"]["name"] = f"{name}-baselines-{stage_key('baselines', raw_base)}"
            study_from_dict(raw_base, f"{where} (baselines)")
            baselines.append(raw_base)
    target = _check_target(raw.get("target"), base, draw.get("dt"), where)
    return SweepConfig(name=name, description=head.get("description", ""), study_file=str(study_file), base=base,
                       model=model, objective=objective, sample=sample, n_samples=n_samples, seed=seed,
                       axes={**axes, **{k: dict(v) for k, v in per_kind.items()}}, trials=tuple(trials),
                       baselines=tuple(baselines), target=target, train_steps=train_steps)


def _check_target(target: Any, base: StudyConfig, dts: list[float] | None, where: str) -> dict[str, Any] | None:
    """A [target] table: ``baseline`` (one of the base study's), ``factor`` > 0 and ``dt`` (one that is run)."""
    if target is None:
        return None
    if not isinstance(target, Mapping) or set(target) - {"baseline", "factor", "dt"}:
        raise _fail(where, f"[target] takes baseline, factor and dt, got {target!r}")
    if target.get("baseline") not in base.baselines:
        raise _fail(where, f"[target] baseline = {target.get('baseline')!r} is not a baseline of the base study; "
                           f"choose from {', '.join(base.baselines) or '(none: the base study has no baselines)'}")
    factor = target.get("factor")
    if not _is_number(factor) or factor <= 0:
        raise _fail(where, f"[target] factor must be a number > 0, got {factor!r}")
    run = dts if dts is not None else [d for d in (getattr(base.test, "dt", None),) if d is not None]
    dt = target.get("dt", run[0] if len(run) == 1 else None)
    if not _is_number(dt) or not any(math.isclose(dt, d) for d in run):
        raise _fail(where, f"[target] dt = {dt!r} is not a time step of the sweep; choose from "
                           f"{', '.join(f'{d:g}' for d in run)}")
    return {"baseline": target["baseline"], "factor": float(factor), "dt": float(dt)}


def check_target(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sweep's [target] against its trials: the best point at the target's Δt (by its worst seed) against
    the baseline there. ``met`` when the baseline's objective is ``factor`` times the point's worst seed or more
    (for a figure where larger is better: the point's worst seed is ``factor`` times the baseline's)."""
    target = result["config"].get("target")
    if not target:
        return None
    minimise = result["direction"] == "min"
    dt = target["dt"]
    base = [b["objective"] for b in result["baselines"] if b["label"] == target["baseline"]
            and math.isclose(b["dt"], dt)]
    baseline = base[0] if base else float("nan")
    sign = 1.0 if minimise else -1.0
    at_dt = [p for p in rank([t for t in result["trials"] if math.isclose(t["values"].get("dt", dt), dt)],
                             result["direction"]) if np.isfinite(p["worst"])]  # a NaN seed rules a point out
    top = min(at_dt, key=lambda p: sign * p["worst"], default=None)
    best_point, best = (top["point"], top["worst"]) if top else (None, float("nan"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = baseline / best if minimise else best / baseline
    met = bool(np.isfinite(ratio) and ratio >= target["factor"])
    return {**target, "baseline_objective": baseline, "best_point": best_point, "worst_seed": best,
            "ratio": float(ratio), "met": met}


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate ``studies/sweeps/NAME.toml`` (and its base study)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise StudyConfigError(f"no such sweep config: '{p}'")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise StudyConfigError(f"{p}: not valid TOML: {err}") from None
    return sweep_from_dict(raw, str(p), base_dir=p.parent)


# ----------------------------------------------------------------------------------------------- one trial
_KEEP = ("label", "kind", "seed", "settings", "model_file", "rollout_file", "fit_seconds", "n_traj", "diverged",
         "components", "horizon", "physics", "physics_exact")


def _kept(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial's result keeps of a run: its identity and every summary figure (not the per-trajectory ones)."""
    keys = (*_KEEP, *(m.key for m in METRICS.values()))
    return {k: row[k] for k in keys if k in row}


def objective_of(row: Mapping[str, Any], objective: str) -> float:
    """The objective's value for one run: the worst component of a per-component figure; NaN if it diverged."""
    value = row.get(objective, row.get("physics", {}).get(objective))
    if value is None:
        raise ValueError(f"objective {objective}: this study does not compute it (its analysis is "
                         f"{row.get('physics', {}).get('kind', 'none')})")
    return float(np.max(value))


def run_trial(study: Mapping[str, Any], root: str | Path, *, objective: str | None = None,
              log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Run one trial's study in this process: its metrics, or its error; never raises for a failing trial."""
    from .runner import run_study

    started = time.perf_counter()
    try:
        result = run_study(study_from_dict(study, f"trial {study['study']['name']}"), root=root, log=log)
        rows = [_kept(r) for r in result.rows]
        record = {"status": "ok", "rows": rows}
        if objective is not None:
            record["objective"] = objective_of(rows[0], objective)
    except Exception as err:  # the sweep goes on; the error is recorded with its trial
        first = str(err).splitlines()[0] if str(err) else ""
        record = {"status": "failed", "error": f"{type(err).__name__}: {first}", "traceback": traceback.format_exc()}
    record.update(seconds=time.perf_counter() - started, pid=os.getpid())
    return record


def _write_json(path: Path, data: Any) -> None:
    from .report import write_atomic

    write_atomic(path, json.dumps(data, indent=2, default=str))


def _trial_main(argv: list[str]) -> int:
    """``python -m physrnn.sweep TRIAL_DIR ROOT [OBJECTIVE]``: run the trial in TRIAL_DIR/study.json and write
    TRIAL_DIR/result.json (through a temporary name). A failing trial still exits 0: its error is its result."""
    trial_dir, root = Path(argv[0]), argv[1]
    objective = argv[2] if len(argv) > 2 else None
    study = json.loads((trial_dir / "study.json").read_text())
    record = run_trial(study, root, objective=objective, log=lambda m: print(m, file=sys.stderr, flush=True))
    _write_json(trial_dir / "result.json", record)
    return 0


class TrialProcessDied(RuntimeError):
    """The process running a trial ended without a result (killed, out of memory): the task is retried."""


#: How a trial's process starts. "fork": from a launcher that has imported TensorFlow, Keras and physrnn once
#: (per worker thread) and forks a new child for each trial, so a trial costs no import time; "exec": a new
#: interpreter per trial (about 5 s of CPU for the imports). Fork is the default only on Linux: elsewhere
#: forking a process that has loaded system frameworks (macOS's Accelerate and Objective-C runtime) is unsafe.
STARTS = ("fork", "exec")
DEFAULT_START = "fork" if sys.platform.startswith("linux") else "exec"


def _last_line(output: str) -> str:
    """What a dead process said last: its error, usually."""
    return (output.strip().splitlines() or ["no output"])[-1]


def _trial_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:  # share the worker's cores between the trial's thread pools, not oversubscribe them
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
    return env


def _serve() -> int:
    """``python -m physrnn.sweep --serve``: a trial launcher. It imports what every trial imports, then, for each
    request line on stdin (``{"argv": [TRIAL_DIR, ROOT, ...], "log": PATH}``), forks a child that runs the trial
    with its output in PATH, waits for it and answers ``{"pid": ..., "status": ...}`` on stdout.

    Forking is safe here because the launcher never runs TensorFlow: importing it starts no runtime and no
    threads (its thread pools and eager context are created by a trial's first operation, in the child), and
    the only other threads, OpenBLAS's, are shut down and restarted around a fork by OpenBLAS itself.
    """
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the imports print goes to the launcher's stderr, never into the answers
    # What every trial imports (TensorFlow and Keras come with the network models): paid once, here.
    for module in ("physrnn.models.recurrent", "physrnn.models.esn", "physrnn.runner"):
        importlib.import_module(module)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the trial: a new process that shares nothing with other trials but the imported code
            code = 1
            try:
                answers.close()  # so that the task sees the launcher's end at once if the launcher dies
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(out, 1)
                os.dup2(out, 2)
                code = _trial_main(request["argv"])
            except BaseException:  # a child must never return into the launcher's loop
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"pid": pid, "status": os.waitstatus_to_exitcode(status)}) + "\n")
    return 0


class _Launcher:
    """The task's side of a ``--serve`` launcher process: one per worker thread, started on its first trial."""

    def __init__(self, python: str, threads: int | None):
        self.key = (python, threads)
        self.errors = tempfile.TemporaryFile()  # the launcher's own output (import warnings): read if it dies
        self.process = subprocess.Popen([python, "-m", "physrnn.sweep", "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.errors, env=_trial_env(threads),
                                        text=True, bufsize=1)

    def run(self, argv: list[str], log: Path) -> int:
        """Run one trial in a fresh child of the launcher; its exit status (negative: the signal that ended it)."""
        try:
            self.process.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        except OSError:  # the launcher is gone (broken pipe)
            answer = ""
        if not answer:
            self.close()
            self.errors.seek(0)
            raise TrialProcessDied(f"the trial launcher exited with status {self.process.poll()} "
                                   f"({_last_line(self.errors.read().decode(errors='replace'))})")
        return json.loads(answer)["status"]

    def close(self) -> None:
        """End the launcher: it exits when its stdin closes, after the trial it is running, if any."""
        with suppress(OSError):
            self.process.stdin.close()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


_LAUNCHERS: dict[int, _Launcher] = {}  # by worker thread, so tasks running at once never share a launcher
_LAUNCHERS_LOCK = threading.Lock()


def _launcher(python: str, threads: int | None) -> _Launcher:
    thread = threading.get_ident()
    with _LAUNCHERS_LOCK:
        launcher = _LAUNCHERS.get(thread)
    if launcher is not None and (launcher.key != (python, threads) or launcher.process.poll() is not None):
        launcher.close()
        launcher = None
    if launcher is None:
        launcher = _Launcher(python, threads)
        with _LAUNCHERS_LOCK:
            _LAUNCHERS[thread] = launcher
    return launcher


def _close_launchers() -> int:
    """End this process's launchers (run on every worker when a sweep ends, to free their memory)."""
    with _LAUNCHERS_LOCK:
        launchers = list(_LAUNCHERS.values())
        _LAUNCHERS.clear()
    for launcher in launchers:
        launcher.close()
    return len(launchers)


def _trial_task(trial_dir: str, root: str, objective: str | None, python: str, threads: int | None,
                start: str = DEFAULT_START) -> dict[str, Any]:
    """What a Dask worker runs: the trial in a new process, so nothing carries over between trials."""
    argv = [trial_dir, root] + ([objective] if objective else [])
    result, log = Path(trial_dir) / "result.json", Path(trial_dir) / "trial.log"
    result.unlink(missing_ok=True)
    started = time.perf_counter()
    if start == "fork":
        status = _launcher(python, threads).run(argv, log)
    else:
        with open(log, "w") as out:
            status = subprocess.run([python, "-m", "physrnn.sweep", *argv], stdout=out, stderr=subprocess.STDOUT,
                                    env=_trial_env(threads)).returncode
    if not result.is_file():
        raise TrialProcessDied(f"the trial process exited with status {status} and no result "
                               f"({_last_line(log.read_text() if log.is_file() else '')})")
    # The process's whole life, start-up included: what a trial costs on the cluster.
    return {**json.loads(result.read_text()), "process_seconds": time.perf_counter() - started}


# ----------------------------------------------------------------------------------------------- the sweep
def _sweep_dir(sweep: SweepConfig, root: Path) -> Path:
    return root / "sweeps" / sweep.name


def run_sweep(sweep: SweepConfig, root: str | Path = "data", *, client=None, log: Callable[[str], None] = print,
              python: str = sys.executable, threads: int | None = None, start: str = DEFAULT_START
              ) -> dict[str, Any]:
    """Run (or resume) every trial of ``sweep`` and the base study's baselines; return the sweep's results.

    With a Dask ``client`` each trial is a task that runs it in a new process under ``python``, with
    ``threads`` threads per pool if given, started as ``start`` says (see STARTS); without one, the trials run
    one after another in this process (the reference a parallel sweep must reproduce).
    """
    if start not in STARTS:
        raise ValueError(f"start = {start!r}: choose one of {', '.join(STARTS)}")
    from .runner import prepare_data

    root = Path(root).resolve()
    out = _sweep_dir(sweep, root)
    started = time.perf_counter()
    # The data first, once per time step, so that no two trials simulate the same ensemble at once.
    for study in {json.dumps([t.study["train"], t.study["test"]], sort_keys=True): t.study
                  for t in sweep.trials}.values():
        prepare_data(study_from_dict(study, "trial"), root, log=log)

    jobs = [("trial", t.id, t.study, sweep.objective) for t in sweep.trials]
    jobs += [("baselines", b["study"]["name"], b, None) for b in sweep.baselines]
    records: dict[str, dict[str, Any]] = {}
    pending = []
    for role, key, study, objective in jobs:
        trial_dir = out / "trials" / key
        trial_dir.mkdir(parents=True, exist_ok=True)
        result = trial_dir / "result.json"
        record = json.loads(result.read_text()) if result.is_file() else {}
        if record.get("status") == "ok":
            records[key] = record
            continue
        _write_json(trial_dir / "study.json", study)
        pending.append((key, trial_dir, objective))
    log(f"[sweep] {sweep.name}: {len(sweep.trials)} trials and {len(sweep.baselines)} baseline runs; "
        f"{len(records)} done before, {len(pending)} to run"
        + (f" on {len(client.scheduler_info()['workers'])} Dask workers" if client is not None else " in this process"))

    def finished(key: str, record: dict[str, Any]) -> None:
        records[key] = record
        what = (f"{sweep.objective} {record['objective']:.3g}" if "objective" in record
                else record.get("error", record["status"]))
        log(f"[sweep] {len(records)}/{len(jobs)} {_describe(sweep, key)}: {what} ({record['seconds']:.1f} s)")

    if client is None:
        for key, trial_dir, objective in pending:
            record = run_trial(json.loads((trial_dir / "study.json").read_text()), root, objective=objective)
            _write_json(trial_dir / "result.json", record)
            finished(key, record)
    else:
        from dask.distributed import as_completed

        futures = {client.submit(_trial_task, str(trial_dir), str(root), objective, python, threads, start,
                                 retries=RETRIES, pure=False): key
                   for key, trial_dir, objective in pending}
        try:
            for future in as_completed(futures):
                key = futures[future]
                try:
                    record = future.result()
                except Exception as err:  # died RETRIES + 1 times (TrialProcessDied), or its worker did
                    record = {"status": "failed", "error": f"{type(err).__name__}: {str(err).splitlines()[0]}",
                              "seconds": float("nan")}
                    _write_json(out / "trials" / key / "result.json", record)
                finished(key, record)
        finally:
            client.cancel(list(futures))
            try:
                client.run(_close_launchers)
            except Exception as err:  # a worker that is gone has nothing left to close
                log(f"[sweep] closing the trial launchers: {type(err).__name__}: {err}")
    return _collect(sweep, records, root, time.perf_counter() - started)


def _describe(sweep: SweepConfig, key: str) -> str:
    for t in sweep.trials:
        if t.id == key:
            return f"{t.point} seed={t.seed}"
    return "baselines"


def _collect(sweep: SweepConfig, records: Mapping[str, dict[str, Any]], root: Path, seconds: float) -> dict[str, Any]:
    from simulators.trajectory_file import software_versions

    out = _sweep_dir(sweep, root)
    trials = [{"id": t.id, "point": t.point, "values": dict(t.values), "study_file": str(out / "trials" / t.id /
                                                                                       "study.json"),
               **records[t.id]} for t in sweep.trials]
    baselines = []
    for b in sweep.baselines:
        record = records[b["study"]["name"]]
        dt = b["train"]["dt"]
        for row in record.get("rows", []):
            baselines.append({"label": row["label"], "dt": dt, "objective": _maybe_objective(row, sweep.objective),
                              **{k: row[k] for k in ("rmse", "max_error", "valid_time_median") if k in row}})
    result = {"sweep": sweep.name, "description": sweep.description, "config": sweep.to_dict(),
              "objective": sweep.objective, "direction": sweep.direction, "trials": trials,
              "ranking": rank(trials, sweep.direction), "baselines": baselines, "seconds": seconds,
              "software": software_versions(), "root": str(root)}
    result["target"] = check_target(result)
    return result


def _maybe_objective(row: Mapping[str, Any], objective: str) -> float:
    try:
        return objective_of(row, objective)
    except ValueError:
        return float("nan")


def rank(trials: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """One entry per point, best first: the objective's mean, std, min and max over the point's seeds.

    A diverged seed (NaN) or a failed one makes the point's mean NaN, and such points rank last: a setting
    that fails on some seeds is not a good setting.
    """
    points: dict[str, list[dict[str, Any]]] = {}
    for t in trials:  # by value, not by label: two random draws may print alike
        key = json.dumps({k: v for k, v in t["values"].items() if k != "seed"}, sort_keys=True)
        points.setdefault(key, []).append(t)
    out = []
    for runs in points.values():
        point = runs[0]["point"]
        values = np.array([r.get("objective", np.nan) if r["status"] == "ok" else np.nan for r in runs], float)
        finite = values[np.isfinite(values)]
        out.append({"point": point, "values": {k: v for k, v in runs[0]["values"].items() if k != "seed"},
                    "seeds": [r["values"]["seed"] for r in runs], "objectives": values.tolist(),
                    "mean": float(values.mean()), "std": float(values.std()),
                    "best": float(finite.min() if direction == "min" else finite.max()) if finite.size else math.nan,
                    "worst": float(values.max() if direction == "min" else values.min()),
                    "failed": sum(r["status"] != "ok" for r in runs),
                    "best_trial": min((r for r in runs if r["status"] == "ok" and np.isfinite(r["objective"])),
                                      key=lambda r: r["objective"] * (1 if direction == "min" else -1),
                                      default={"id": None})["id"]})
    sign = 1 if direction == "min" else -1
    return sorted(out, key=lambda p: (not np.isfinite(p["mean"]), sign * p["mean"] if np.isfinite(p["mean"]) else 0))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # an entry point: TensorFlow's start-up chatter, before it loads
    sys.exit(_serve() if sys.argv[1:] == ["--serve"] else _trial_main(sys.argv[1:]))
