"""Rollout files and their scores: shared by ``physrnn rollout``/``evaluate`` and the study runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from simulators.trajectory_file import Trajectories, read_trajectories, write_trajectories

from .data import build_step_data
from .metrics import max_error, nrmse, rmse, valid_time
from .models import Rollout, StepModel

__all__ = ["evaluate_rollout", "rollout_to_file"]


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


def evaluate_rollout(path: str, valid_fraction: float = 0.1, *, truth: Trajectories | None = None) -> dict[str, Any]:
    """Metrics of a rollout file against its truth, over the closed-loop steps (after the context).

    ``truth`` is the file the rollout names (read from disk unless the caller already holds it).
    """
    rolled = read_trajectories(path)
    if not rolled.method.startswith("rollout:"):
        raise ValueError(f"'{path}' holds {rolled.method} trajectories, not a rollout; give a file from physrnn rollout")
    if truth is None:
        truth = read_trajectories(rolled.attrs["truth_file"])
    index = rolled.params["source_trajectory"]
    true = truth.states[index][:, : rolled.n_steps, : rolled.n_state]
    c = int(rolled.attrs["context"])
    pred, true, time = rolled.states[:, c:], true[:, c:], rolled.time[c:]
    return {"file": path, "model": rolled.method.split(":", 1)[1], "n_traj": rolled.n_traj,
            "diverged": int(rolled.params["diverged"].sum()), "components": list(rolled.state_names),
            "rmse": np.mean(rmse(pred, true), axis=0).tolist(), "nrmse": np.mean(nrmse(pred, true), axis=0).tolist(),
            "max_error": np.max(max_error(pred, true), axis=0).tolist(),
            "valid_time_median": float(np.median(valid_time(pred, true, time, fraction=valid_fraction))),
            "horizon": float(time[-1] - time[0]), "valid_fraction": valid_fraction}


