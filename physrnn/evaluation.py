"""Scoring closed-loop rollouts against the truth: in memory (:func:`evaluate`), or from rollout files.

Every score comes from the metric registry (:data:`physrnn.metrics.METRICS`) and the physical analysis the
system names (:data:`physrnn.analysis.ANALYSES`), so a new metric or analysis shows up here, in study
summaries, targets, sweep objectives and reports without an edit here. No TensorFlow is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from simulators.system import get_system
from simulators.trajectory_file import Trajectories, fingerprint, read_trajectories, write_trajectories

from .analysis import ANALYSES, analyse, applicable, headline
from .data import StepData, build_step_data
from .diagnostics import target_figures
from .metrics import METRICS
from .models.base import Rollout, StepModel

__all__ = ["Scores", "all_figures", "evaluate", "evaluate_rollout", "read_rollout", "rollout_to_file", "score",
           "summary_figures", "write_rollout"]


def summary_figures(system, observed: tuple[str, ...]) -> dict[str, str]:
    """Every summary figure a rollout of ``system`` observed as ``observed`` is scored by, and which way is
    better (``"min"`` or ``"max"``): the applicable metrics' summaries and the physical analysis' figures."""
    out = {m.key: m.better for m in METRICS.values() if m.applies(system, observed)}
    kind = system.physics_analysis(tuple(observed)) if system is not None else None
    if kind is not None:
        out.update({key: "min" for key in ANALYSES[kind].figures})
    if system is not None:
        out.update(target_figures(system, tuple(observed)))
    return out


def all_figures() -> dict[str, str]:
    """Every summary figure of every metric and analysis in the registries, with its better direction."""
    out = {m.key: m.better for m in METRICS.values()}
    for analysis in ANALYSES.values():
        out.update({key: "min" for key in analysis.figures})
    out.update(target_figures())
    return out


@dataclass(frozen=True, eq=False)
class Scores:
    """Scores of one rollout of a test set, per trajectory, with their summaries.

    Attributes
    ----------
    model : str
        The model kind that rolled out.
    components : tuple of str
        The observed components (per-component scores follow this order).
    horizon : float
        Length in time of the closed-loop part scored.
    valid_fraction : float
        The valid-time threshold used.
    per_trajectory : dict of str to ndarray
        Every applicable metric of the registry: (n_traj,) or (n_traj, n_obs).
    diverged : ndarray of bool, shape (n_traj,)
    physics_kind : str or None
        The physical analysis that ran (see :mod:`physrnn.analysis`).
    physics, physics_exact : dict of str to ndarray
        Its per-trajectory figures on the rollout, and on the exact solution (the estimator's floor).
    applies : ndarray of bool or None
        The trajectories the analysis is defined for.
    groups : dict of str to ndarray of int
        Labelled groups of test trajectories, each summarised on its own.
    """

    model: str
    components: tuple[str, ...]
    horizon: float
    valid_fraction: float
    per_trajectory: Mapping[str, np.ndarray]
    diverged: np.ndarray
    physics_kind: str | None = None
    physics: Mapping[str, np.ndarray] = field(default_factory=dict)
    physics_exact: Mapping[str, np.ndarray] = field(default_factory=dict)
    applies: np.ndarray | None = None
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_traj(self) -> int:
        return len(self.diverged)

    def summary(self, index: np.ndarray | None = None) -> dict[str, Any]:
        """Each metric summarised over the trajectories ``index`` (default: all), as the registry says (a
        diverged rollout's NaN stays), and the analysis' headline figures over those it applies to."""
        index = np.arange(self.n_traj) if index is None else np.asarray(index, dtype=int)
        out: dict[str, Any] = {"n_traj": int(len(index))}
        for name, values in self.per_trajectory.items():
            out[METRICS[name].key] = METRICS[name].summarise(np.asarray(values)[index])
        if self.physics_kind is not None:
            mask = np.zeros(self.n_traj, dtype=bool)
            mask[index] = True
            if self.applies is not None:
                mask &= self.applies
            if mask.any():  # e.g. no damping ratio to read from critically or over-damped motion
                out["physics"] = {"kind": self.physics_kind, **headline(self.physics_kind, self.physics, mask)}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The summary, the physics, each group's summary, and every per-trajectory figure (JSON-ready)."""
        out = {"model": self.model, **self.summary(), "diverged": int(self.diverged.sum()),
               "components": list(self.components), "horizon": self.horizon, "valid_fraction": self.valid_fraction}
        if self.physics_kind is not None:
            # The summary holds the physics unless no trajectory applies; the record always does (then NaN).
            out.setdefault("physics", {"kind": self.physics_kind,
                                       **headline(self.physics_kind, self.physics, self.applies)})
            out["physics_exact"] = headline(self.physics_kind, self.physics_exact, self.applies)
            out["physics_trajectories"] = {k: np.asarray(v).tolist() for k, v in self.physics.items()}
        groups = {}
        for label, index in self.groups.items():
            part = self.summary(index)
            part.get("physics", {}).pop("kind", None)
            groups[label] = part
        out["groups"] = groups
        out["trajectories"] = {"per_trajectory": {k: np.asarray(v).tolist() for k, v in self.per_trajectory.items()},
                               "diverged": self.diverged.tolist(),
                               "physics_exact": {k: np.asarray(v).tolist() for k, v in self.physics_exact.items()},
                               "applies": None if self.applies is None else self.applies.tolist(),
                               "groups": {k: np.asarray(v).tolist() for k, v in self.groups.items()}}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scores:
        """The inverse of :meth:`to_dict`."""
        t = d["trajectories"]
        return cls(model=d["model"], components=tuple(d["components"]), horizon=float(d["horizon"]),
                   valid_fraction=float(d["valid_fraction"]),
                   per_trajectory={k: np.asarray(v, float) for k, v in t["per_trajectory"].items()},
                   diverged=np.asarray(t["diverged"], bool), physics_kind=d.get("physics", {}).get("kind"),
                   physics={k: np.asarray(v, float) for k, v in d.get("physics_trajectories", {}).items()},
                   physics_exact={k: np.asarray(v, float) for k, v in t["physics_exact"].items()},
                   applies=None if t["applies"] is None else np.asarray(t["applies"], bool),
                   groups={k: np.asarray(v, int) for k, v in t["groups"].items()})


def score(*, true: np.ndarray, pred: np.ndarray, time: np.ndarray, system=None, components: tuple[str, ...],
          model: str = "", diverged: np.ndarray | None = None, valid_fraction: float = 0.1,
          steady_fraction: float = 1 / 3, groups: Mapping[str, np.ndarray] | None = None) -> Scores:
    """Scores of closed-loop predictions ``pred`` against ``true`` (both (n_traj, n_steps, n_obs)) on ``time``
    (keyword-only, as every metric: see :mod:`physrnn.metrics`).

    ``system`` (the true system, one parameter set per trajectory; None for data given as arrays) decides
    which metrics apply and which physical analysis runs; ``components`` names the observed components.
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    if not 0 < valid_fraction:
        raise ValueError(f"valid_fraction must be > 0, got {valid_fraction!r}")
    per_trajectory = {name: metric.compute(true=true, pred=pred, time=time, system=system,
                                           valid_fraction=valid_fraction)
                      for name, metric in METRICS.items() if metric.applies(system, components)}
    kind = system.physics_analysis(components) if system is not None else None
    physics, exact, applies = {}, {}, None
    if kind is not None:
        physics = analyse(kind, pred, time, system, steady_fraction=steady_fraction)
        exact = analyse(kind, true, time, system, steady_fraction=steady_fraction)
        applies = applicable(kind, exact)
    return Scores(model=model, components=tuple(components), horizon=float(time[-1] - time[0]),
                  valid_fraction=float(valid_fraction), per_trajectory=per_trajectory,
                  diverged=np.zeros(len(pred), bool) if diverged is None else np.asarray(diverged, bool),
                  physics_kind=kind, physics=physics, physics_exact=exact, applies=applies,
                  groups={k: np.asarray(v, int) for k, v in (groups or {}).items()})


def evaluate(rollout: Rollout, data: StepData, *, valid_fraction: float = 0.1, steady_fraction: float = 1 / 3,
             groups: Mapping[str, np.ndarray] | None = None, model: str = "") -> Scores:
    """Scores of a closed-loop ``rollout`` against the data it was rolled out on, over the steps after its
    context (the true states it started from are not scored)."""
    if not isinstance(rollout, Rollout) or not isinstance(data, StepData):
        raise TypeError("evaluate(rollout, data) takes a Rollout (from model.rollout(data)) and that StepData")
    n_steps, c = rollout.observed.shape[1], rollout.context
    if rollout.observed.shape[0] != data.n_traj or n_steps > data.observed.shape[1]:
        raise ValueError(f"the rollout has {rollout.observed.shape[0]} trajectories of {n_steps} steps but the data "
                         f"{data.n_traj} of {data.observed.shape[1]}; evaluate a rollout on the data it came from")
    return score(true=data.observed[:, c:n_steps], pred=rollout.observed[:, c:], time=rollout.time[c:],
                 system=data.system, components=data.state_names, model=model, diverged=rollout.diverged,
                 valid_fraction=valid_fraction, steady_fraction=steady_fraction, groups=groups)


def rollout_to_file(model: StepModel, truth: Trajectories, truth_file: str | os.PathLike, index: np.ndarray,
                    path: str | os.PathLike, *, model_file: str | os.PathLike | None = None,
                    context: int | None = None, n_steps: int | None = None,
                    selection: str = "all") -> tuple[Rollout, Path]:
    """Roll ``model`` out on trajectories ``index`` of ``truth`` and write the result (:func:`write_rollout`)."""
    index = np.asarray(index, dtype=int)
    data = build_step_data(truth, model.spec_).take(index)
    result = model.rollout(data, context=context, n_steps=n_steps)
    return result, write_rollout(result, truth, truth_file, index, path, kind=model.kind, model_file=model_file,
                                 selection=selection, state_names=data.state_names)


def write_rollout(rollout: Rollout, truth: Trajectories, truth_file: str | os.PathLike, index: np.ndarray,
                  path: str | os.PathLike, *, kind: str, state_names: tuple[str, ...],
                  model_file: str | os.PathLike | None = None, selection: str = "all") -> Path:
    """Write a rollout of trajectories ``index`` of ``truth`` in the trajectory schema.

    The file's method is ``rollout:KIND``; ``/params`` keeps the truth's parameters of those trajectories and
    adds ``diverged``, ``diverged_at`` and ``source_trajectory``; its attributes name the truth file (absolute
    path) with a fingerprint of the trajectories rolled out on (:func:`simulators.trajectory_file.fingerprint`),
    the model file and the context, so :func:`evaluate_rollout` can score it from the file alone, from any
    directory, and refuses a truth file that changed since.
    """
    index = np.asarray(index, dtype=int)
    params = {k: v[index] for k, v in truth.params.items()}
    params.update(diverged=rollout.diverged, diverged_at=rollout.diverged_at, source_trajectory=index)
    units = tuple(truth.state_units[i] for i in _observed_indices(truth, tuple(state_names)))
    out = Trajectories(system=truth.system, time=rollout.time, states=rollout.observed, params=params,
                       state_names=tuple(state_names), state_units=units,
                       method=f"rollout:{kind}",
                       attrs={"seed": truth.attrs.get("seed", 0), "config": truth.attrs.get("config", {}),
                              "model_file": str(Path(model_file).resolve()) if model_file else "",
                              "truth_file": str(Path(truth_file).resolve()),
                              "truth_fingerprint": fingerprint(truth, index, len(rollout.time)),
                              "context": rollout.context, "selection": selection,
                              "bound": rollout.bound, "seconds": rollout.seconds})
    return write_trajectories(path, out)


def read_rollout(path: str | os.PathLike) -> Rollout:
    """The :class:`~physrnn.models.Rollout` a rollout file holds (see :func:`write_rollout`)."""
    rolled = _rollout_file(path)
    return Rollout(time=rolled.time, observed=rolled.states, context=int(rolled.attrs["context"]),
                   diverged=np.asarray(rolled.params["diverged"], bool),
                   diverged_at=np.asarray(rolled.params["diverged_at"], np.int64),
                   bound=float(rolled.attrs.get("bound", np.nan)), seconds=float(rolled.attrs.get("seconds", 0.0)))


def evaluate_rollout(path: str | os.PathLike, valid_fraction: float = 0.1, *, truth: Trajectories | None = None,
                     groups: Mapping[str, np.ndarray] | None = None, steady_fraction: float = 1 / 3) -> Scores:
    """Scores of a rollout file (from ``physrnn rollout``) against the truth file it names.

    ``truth`` is that file's content, if the caller already holds it. ``groups`` maps a label to positions
    of trajectories in the rollout.
    """
    rolled = _rollout_file(path)
    truth_file = rolled.attrs["truth_file"]
    if truth is None:
        truth = read_trajectories(truth_file)
    index = rolled.params["source_trajectory"]
    expected = rolled.attrs.get("truth_fingerprint")
    if expected is None:
        raise ValueError(f"'{path}' records no fingerprint of its truth (an older physrnn wrote it); roll the model "
                         "out again with `physrnn rollout`")
    if (index.max(initial=-1) >= truth.n_traj or truth.n_steps < rolled.n_steps
            or fingerprint(truth, index, rolled.n_steps) != expected):
        raise ValueError(f"the truth file '{truth_file}' no longer holds the trajectories '{path}' was rolled out "
                         "on (it was regenerated or changed since); roll the model out again with `physrnn rollout`")
    c = int(rolled.attrs["context"])
    # The observed components are the first n_state of the truth's (full, or the position alone).
    true = truth.states[index][:, : rolled.n_steps][..., _observed_indices(truth, rolled.state_names)]
    system = get_system(rolled.system).from_params(rolled.params).broadcast(rolled.n_traj)
    return score(true=true[:, c:], pred=rolled.states[:, c:], time=rolled.time[c:], system=system,
                 components=tuple(rolled.state_names), model=rolled.method.split(":", 1)[1],
                 diverged=rolled.params["diverged"], valid_fraction=valid_fraction,
                 steady_fraction=steady_fraction, groups=groups)


def _rollout_file(path: str | os.PathLike) -> Trajectories:
    rolled = read_trajectories(path)
    if not rolled.method.startswith("rollout:"):
        raise ValueError(f"'{path}' holds {rolled.method} trajectories, not a rollout; give a file from "
                         "physrnn rollout")
    return rolled


def _observed_indices(truth: Trajectories, names: tuple[str, ...]) -> list[int]:
    try:
        return [truth.state_names.index(n) for n in names]
    except ValueError:
        raise ValueError(f"the rollout's components {list(names)} are not among the truth's "
                         f"{list(truth.state_names)}; evaluate it against the file it was rolled out on") from None
