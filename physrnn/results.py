"""Typed results of a study, held in memory and written to (and read back from) ``results.json``.

A :class:`StudyResult` holds everything a report needs, the figures' data included, so a report can be rebuilt
from the stored results alone (``physrnn report``), with no cache and no trajectory file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .evaluation import Scores
from .metrics import METRICS

__all__ = ["RunResult", "StudyResult", "TargetCheck", "summarise"]


@dataclass(frozen=True, eq=False)
class RunResult:
    """One model trained with one seed (a physics baseline: no seed), rolled out on the test set and scored."""

    label: str
    kind: str
    seed: int | None
    settings: Mapping[str, Any]
    scores: Scores
    fit_seconds: float = 0.0
    history: Mapping[str, list] = field(default_factory=dict)
    model_file: str = ""
    rollout_file: str = ""
    #: :meth:`physrnn.diagnostics.Diagnostics.summary` of the model's step Jacobian, or why there is none
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    #: For a model that identifies a vector field (SINDy): its equations against the true field's in its library
    #: (:meth:`physrnn.models.SINDy.against_truth`); empty for the others
    identified: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "seed": self.seed, "settings": dict(self.settings),
                "model_file": self.model_file, "rollout_file": self.rollout_file, "fit_seconds": self.fit_seconds,
                "history": dict(self.history), "diagnostics": dict(self.diagnostics),
                "identified": dict(self.identified), **self.scores.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunResult:
        return cls(label=d["label"], kind=d["kind"], seed=d["seed"], settings=d["settings"],
                   scores=Scores.from_dict(d), fit_seconds=float(d["fit_seconds"]), history=d.get("history", {}),
                   model_file=d.get("model_file", ""), rollout_file=d.get("rollout_file", ""),
                   diagnostics=d.get("diagnostics", {}), identified=d.get("identified", {}))


@dataclass(frozen=True)
class TargetCheck:
    """A [targets] bound against a model's worst seed (and worst component); NaN (divergence) fails."""

    label: str
    metric: str
    bound: float
    worst: float
    met: bool
    better: str = "min"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "metric": self.metric, "bound": self.bound, "worst": self.worst,
                "met": self.met, "better": self.better}


def _spread(values: list[Any]) -> tuple[Any, Any]:
    """Mean and std over seeds (elementwise for per-component lists); NaN stays NaN."""
    a = np.array(values, dtype=float)
    return a.mean(axis=0).tolist(), a.std(axis=0).tolist()


def _scores(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of every summary the runs share (a whole test set, or one group of it); a metric
    summarised by its maximum is reported at its worst seed and component."""
    out: dict[str, Any] = {"n_traj": runs[0]["n_traj"]}
    for metric in METRICS.values():
        if metric.key not in runs[0]:
            continue
        if metric.aggregate == "max":
            out[metric.key] = float(np.max([np.max(r[metric.key]) for r in runs]))
        else:
            out[f"{metric.key}_mean"], out[f"{metric.key}_std"] = _spread([r[metric.key] for r in runs])
    if "physics" in runs[0]:
        out["physics"] = {k: _spread([r["physics"][k] for r in runs]) for k in runs[0]["physics"] if k != "kind"}
    return out


#: A long run's invariant error, from best to worst (see :func:`physrnn.diagnostics.growth_class`).
GROWTH_CLASSES = ("bounded", "secular", "diverged")


def invariant_growth(runs: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per invariant the model's long runs conserve: the worst class over seeds and starts, the worst envelope
    exponent (None where a start diverged) and the run's steps; empty where the runs have no long horizon."""
    longs = [r.get("diagnostics", {}).get("long_horizon") for r in runs]
    if not longs or any(h is None for h in longs):
        return {}
    out = {}
    for name in (k[: -len("_growth")] for k in longs[0] if k.endswith("_growth")):
        classes = [c for h in longs for c in h[f"{name}_growth"]]
        exponents = [h[f"{name}_growth_exponent"] for h in longs]
        out[name] = {"class": max(classes, key=GROWTH_CLASSES.index), "steps": longs[0]["steps"],
                     "exponent": None if None in exponents else float(max(exponents))}
    return out


def summarise(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
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
        entry["invariant_growth"] = invariant_growth(mine)
        out.append(entry)
    return out


@dataclass(frozen=True, eq=False)
class StudyResult:
    """A study's outcome: the resolved config, provenance, one :class:`RunResult` per (model, seed), the targets
    and the figures' data.

    ``summary`` (one line per model, mean ± std over seeds) is computed from the runs. ``to_json`` /
    ``from_json`` round-trip it through ``results.json``.
    """

    name: str
    description: str
    config: Mapping[str, Any]
    runs: tuple[RunResult, ...]
    targets: tuple[TargetCheck, ...] = ()
    groups: Mapping[str, list[int]] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)
    truth: Mapping[str, Any] = field(default_factory=dict)  # per data part: exact/reference, certificate, λ1
    train_file: str = ""
    test_file: str = ""
    software: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    log: tuple[str, ...] = ()
    #: The study file it was run from (absolute), where there was one: two files with the same [study] name
    #: would otherwise share, and overwrite, one report folder.
    study_file: str = ""

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Every run as the plain dict ``results.json`` stores (computed once: the result is frozen)."""
        return [r.to_dict() for r in self.runs]

    @cached_property
    def summary(self) -> list[dict[str, Any]]:
        """One line per model, mean ± std over seeds (computed once)."""
        return summarise(self.rows)

    def model(self, label: str) -> dict[str, Any]:
        """The summary line of the model ``label``."""
        for line in self.summary:
            if line["label"] == label:
                return line
        raise KeyError(f"no model {label!r} in study {self.name!r}; it has {', '.join(r.label for r in self.runs)}")

    @property
    def physics_exact(self) -> dict[str, float] | None:
        return self.rows[0].get("physics_exact") if self.runs else None

    def to_dict(self) -> dict[str, Any]:
        rows = self.rows
        return {"study": self.name, "description": self.description, "config": dict(self.config),
                "train_file": self.train_file, "test_file": self.test_file, "software": dict(self.software),
                "seconds": self.seconds, "rows": rows, "summary": self.summary,
                "groups": {k: list(v) for k, v in self.groups.items()},
                "physics_exact": rows[0].get("physics_exact") if rows else None,
                "targets": [t.to_dict() for t in self.targets], "figures": dict(self.figures),
                "truth": dict(self.truth), "log": list(self.log), "study_file": self.study_file}

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON; written atomically to ``path`` when one is given."""
        text = json.dumps(self.to_dict(), indent=1, default=_json_default)
        if path is not None:
            from .report import write_atomic

            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyResult:
        return cls(name=d["study"], description=d["description"], config=d["config"],
                   runs=tuple(RunResult.from_dict(r) for r in d["rows"]),
                   targets=tuple(TargetCheck(**t) for t in d.get("targets", [])), groups=d.get("groups", {}),
                   figures=d.get("figures", {}), truth=d.get("truth", {}), train_file=d.get("train_file", ""),
                   test_file=d.get("test_file", ""),
                   software=d.get("software", {}), seconds=float(d.get("seconds", 0.0)), log=tuple(d.get("log", ())),
                   study_file=d.get("study_file", ""))

    @classmethod
    def from_json(cls, source: str | Path) -> StudyResult:
        """From a ``results.json`` path, or from its text."""
        text = source
        if isinstance(source, Path) or not str(source).lstrip().startswith("{"):
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"no stored results at '{path}'; run the study first")
            text = path.read_text()
        try:
            return cls.from_dict(json.loads(text))
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"stored results are not a physrnn study result ({type(err).__name__}: {err}); "
                             "run the study again") from None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
