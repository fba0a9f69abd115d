"""Choosing a model's regularisation on closed loops of the validation trajectories (the NVAR's ridge, SINDy's
threshold): a setting is judged by what a study judges, never by one-step residuals, which prefer settings whose
closed loops diverge (Lorenz-63's NVAR ridge is the measured case)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["choose_on_closed_loops", "closed_loop_scores", "validation_needed"]


def choose_on_closed_loops(observed: np.ndarray, truth: np.ndarray, context: int, spread: np.ndarray,
                           candidates: Sequence[float], name: str) -> tuple[float, dict[str, list]]:
    """The candidate whose closed loops diverge least often, then err least, and the record of every one.

    ``observed`` (n_candidates, n_traj, n_steps, n_obs) holds each candidate's rollouts of the validation
    trajectories ``truth`` (n_traj, ≥ n_steps, n_obs) from ``context`` true states, NaN after a divergence. The
    error of a trajectory is the RMSE over its closed-loop steps of each component in units of ``spread`` (its
    training spread, so that components of different scales weigh alike); a candidate's is the mean over the
    trajectories it keeps bounded. Ties go to the larger candidate (more regularisation). The record, keyed by
    ``name`` (``"ridge"``, ``"threshold"``): ``{name}s`` (the candidates), ``val_diverged`` (counts) and
    ``val_rmse`` (None where every loop diverged).
    """
    diverged, mean = closed_loop_scores(observed, truth, context, spread)
    best = min(range(len(candidates)), key=lambda i: (diverged[i], mean[i], -candidates[i]))
    record = {f"{name}s": [float(c) for c in candidates], "val_diverged": diverged.astype(float).tolist(),
              "val_rmse": [float(m) if np.isfinite(m) else None for m in mean]}
    return float(candidates[best]), record


def closed_loop_scores(observed: np.ndarray, truth: np.ndarray, context: int,
                       spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(diverged count, mean RMSE over the bounded loops; inf where all diverged) per candidate, as
    :func:`choose_on_closed_loops` judges them."""
    spread = np.where(spread > 0, spread, 1.0)
    error = (observed[:, :, context:] - truth[None, :, context:observed.shape[2]]) / spread
    with np.errstate(invalid="ignore"):
        rmse = np.sqrt(np.mean(error**2, axis=(2, 3)))  # (n_candidates, n_traj), NaN where a loop diverged
    n_traj = rmse.shape[1]
    diverged = np.isnan(rmse).sum(axis=1)
    total = np.where(np.isnan(rmse), 0.0, rmse).sum(axis=1)
    mean = np.divide(total, n_traj - diverged, out=np.full(len(observed), np.inf), where=diverged < n_traj)
    return diverged, mean


def validation_needed(kind: str, setting: str, example: float) -> ValueError:
    """The error of a ``kind`` model asked to choose ``setting`` with no validation data to choose it on."""
    return ValueError(f"the {kind} model chooses its {setting} on the closed loops of validation trajectories: pass "
                      f"validation data to fit(), or set {setting} (for example {setting} = {example:g})")
