"""Rollout files and their scores: shared by ``physrnn rollout``/``evaluate`` and the study runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from simulators.trajectory_file import Trajectories, read_trajectories, write_trajectories

from .analysis import analyse, applicable, characteristic_period, headline, physics_of
from .data import build_step_data
from .metrics import energy_error, max_error, nrmse, rmse, valid_time
from .models import Rollout, StepModel

__all__ = ["evaluate_rollout", "rollout_to_file", "score_rollout"]


def rollout_to_file(model: StepModel, truth: Trajectories, truth_file: str | os.PathLike, index: np.ndarray,
                    path: str | os.PathLike, *, model_file: str | os.PathLike | None = None,
                    context: int | None = None, n_steps: int | None = None,
                    selection: str = "all") -> tuple[Rollout, Path]:
    """Roll ``model`` out on trajectories ``index`` of ``truth`` and write the result in the trajectory schema.

    The file's method is ``rollout:KIND``; ``/params`` keeps the truth's parameters of those trajectories and
    adds ``diverged``, ``diverged_at`` and ``source_trajectory``; its attributes name the truth and model files
    and the context, so :func:`evaluate_rollout` can score it from the file alone.
    """
    index = np.asarray(index, dtype=int)
    data = build_step_data(truth, model.spec_).take(index)
    result = model.rollout(data, context=context, n_steps=n_steps)
    params = {k: v[index] for k, v in truth.params.items()}
    params.update(diverged=result.diverged, diverged_at=result.diverged_at, source_trajectory=index)
    out = Trajectories(system=truth.system, time=result.time, states=result.observed, params=params,
                       state_names=data.state_names, state_units=tuple(truth.state_units[: len(data.state_names)]),
                       method=f"rollout:{model.kind}",
                       attrs={"seed": truth.attrs.get("seed", 0), "config": truth.attrs.get("config", {}),
                              "model_file": str(Path(model_file).resolve()) if model_file else "",
                              "truth_file": str(truth_file), "context": result.context, "selection": selection})
    return result, write_trajectories(path, out)


def score_rollout(rolled: Trajectories, truth: Trajectories, *, valid_fraction: float = 0.1) -> dict[str, Any]:
    """Per-trajectory scores of a rollout over its closed-loop steps (after the context).

    Returns arrays: ``rmse``, ``nrmse``, ``max_error`` of shape (n_traj, n_obs); ``valid_time`` and, for the
    oscillator, ``valid_periods`` (valid time over :func:`physrnn.analysis.characteristic_period`) and, under
    full observation, ``energy_error``, of shape (n_traj,); plus the closed-loop ``pred``, ``true`` and ``time``.
    """
    index = rolled.params["source_trajectory"]
    true = truth.states[index][:, : rolled.n_steps, : rolled.n_state]
    c = int(rolled.attrs["context"])
    pred, true, time = rolled.states[:, c:], true[:, c:], rolled.time[c:]
    params = rolled.params
    valid = valid_time(pred, true, time, fraction=valid_fraction)
    scores: dict[str, Any] = {"pred": pred, "true": true, "time": time, "rmse": rmse(pred, true),
                              "nrmse": nrmse(pred, true), "max_error": max_error(pred, true), "valid_time": valid}
    period = characteristic_period(rolled.system, params)
    if period is not None:
        scores["valid_periods"] = valid / period
        if rolled.state_names[:2] == ("x", "v"):
            scores["energy_error"] = energy_error(pred, true, params["natural_frequency"])
    return scores


def _aggregate(scores: dict[str, Any], index: np.ndarray) -> dict[str, Any]:
    """Means over the trajectories ``index`` (median for valid times; a NaN from a diverged rollout stays)."""
    out = {"n_traj": int(len(index)), "rmse": np.mean(scores["rmse"][index], axis=0).tolist(),
           "nrmse": np.mean(scores["nrmse"][index], axis=0).tolist(),
           "max_error": np.max(scores["max_error"][index], axis=0).tolist(),
           "valid_time_median": float(np.median(scores["valid_time"][index]))}
    if "valid_periods" in scores:
        out["valid_periods_median"] = float(np.median(scores["valid_periods"][index]))
    if "energy_error" in scores:
        out["energy_error"] = float(np.mean(scores["energy_error"][index]))
    return out


def evaluate_rollout(path: str, valid_fraction: float = 0.1, *, truth: Trajectories | None = None,
                     groups: dict[str, np.ndarray] | None = None, steady_fraction: float = 1 / 3) -> dict[str, Any]:
    """Metrics of a rollout file against its truth, over the closed-loop steps (after the context).

    ``truth`` is the file the rollout names (read from disk unless the caller already holds it). ``groups``
    maps a label to positions of trajectories in the rollout; each gets the same scores, averaged over its
    members. The physical analysis that applies (:func:`physrnn.analysis.physics_of`) is run on the rollout
    and on the exact solution (the estimator's floor); ``steady_fraction`` is the share of the closed-loop
    horizon the steady-state fit of a driven rollout uses.
    """
    rolled = read_trajectories(path)
    if not rolled.method.startswith("rollout:"):
        raise ValueError(f"'{path}' holds {rolled.method} trajectories, not a rollout; give a file from physrnn rollout")
    if truth is None:
        truth = read_trajectories(rolled.attrs["truth_file"])
    scores = score_rollout(rolled, truth, valid_fraction=valid_fraction)
    everything = np.arange(rolled.n_traj)
    out = {"file": path, "model": rolled.method.split(":", 1)[1], **_aggregate(scores, everything),
           "diverged": int(rolled.params["diverged"].sum()), "components": list(rolled.state_names),
           "horizon": float(scores["time"][-1] - scores["time"][0]), "valid_fraction": valid_fraction}
    kind = physics_of(rolled.system, rolled.params, rolled.state_names)
    figures, applies = {}, None
    if kind is not None:
        figures = analyse(kind, scores["pred"], scores["time"], rolled.params, steady_fraction=steady_fraction)
        exact = analyse(kind, scores["true"], scores["time"], rolled.params, steady_fraction=steady_fraction)
        applies = applicable(kind, exact)
        out["physics"] = {"kind": kind, **headline(kind, figures, applies)}
        out["physics_exact"] = headline(kind, exact, applies)
        out["physics_trajectories"] = {k: np.asarray(v).tolist() for k, v in figures.items()}
    out["groups"] = {}
    for label, index in (groups or {}).items():
        index = np.asarray(index, dtype=int)
        part = _aggregate(scores, index)
        if kind is not None:
            mask = np.zeros(rolled.n_traj, dtype=bool)
            mask[index] = True
            if applies is not None:
                mask &= applies
            if mask.any():  # e.g. no damping ratio to read from critically or over-damped motion
                part["physics"] = headline(kind, figures, mask)
        out["groups"][label] = part
    return out
