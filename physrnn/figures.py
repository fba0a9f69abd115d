"""Report figures: a registry of named figures, each drawn from a :class:`~physrnn.results.StudyResult` alone.

A figure is ``Figure(name, applies, draw, collect)``: ``applies(result)`` says whether it belongs in this
study's report, ``draw(result, colours)`` returns a :class:`matplotlib.figure.Figure` (made directly, never
through pyplot, so drawing changes no backend and leaks no window), and the optional ``collect(inputs)`` runs
when the study runs, with the rollouts in memory, and returns the (JSON-ready) data its drawing needs, stored in
``result.figures[name]``. A new figure is one function and one :func:`register_figure` line.

Every study stores ``result.figures["trace"]``: the first test trajectory, the truth and each model's first
seed, which the rollout, error and phase figures draw.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from simulators import steady_state_response

__all__ = ["FIGURES", "Figure", "FigureInputs", "collect_figures", "colour_map", "draw_figures", "new_figure",
           "png_bytes", "register_figure"]

_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
            "#1f78b4", "#b2df8a"]


def colour_map(labels: list[str]) -> dict[str, str]:
    """One colour per model label, the same in every figure of a report."""
    return {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(labels)}


@dataclass(frozen=True)
class FigureInputs:
    """What ``collect`` sees while a study runs: the first seed's rollout of each model, and the test data."""

    rollouts: Mapping[str, Any]  # label -> physrnn.models.Rollout
    data: Any  # the test StepData (truth, system, names)
    units: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    name: str
    applies: Callable[[Any], bool]
    draw: Callable[[Any, Mapping[str, str]], Any]
    collect: Callable[[FigureInputs], Any] | None = None


FIGURES: dict[str, Figure] = {}


def register_figure(figure: Figure) -> Figure:
    """Add a figure to the registry (re-registering a name replaces it); figures appear in registry order."""
    FIGURES[figure.name] = figure
    return figure


def collect_figures(inputs: FigureInputs) -> dict[str, Any]:
    """The stored data of every figure that collects: ``trace`` and each figure's own."""
    out = {"trace": _trace(inputs)}
    for figure in FIGURES.values():
        if figure.collect is not None:
            data = figure.collect(inputs)
            if data is not None:
                out[figure.name] = data
    return out


def draw_figures(result) -> dict[str, bytes]:
    """PNG bytes of every figure that applies to ``result``, by name, in registry order."""
    colours = colour_map([r.label for r in _first_runs(result)])
    out = {}
    for figure in FIGURES.values():
        if figure.applies(result):
            out[figure.name] = png_bytes(figure.draw(result, colours))
    return out


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def new_figure(*args, **kwargs):
    """A :class:`matplotlib.figure.Figure` and its axes (``subplots`` arguments), made without pyplot."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=kwargs.pop("figsize"))
    axes = fig.subplots(*args, **kwargs)
    return fig, axes


def _first_runs(result) -> list:
    """The first run (lowest seed) of each model."""
    seen, out = set(), []
    for run in result.runs:
        if run.label not in seen:
            seen.add(run.label)
            out.append(run)
    return out


def _physics_kind(result) -> str | None:
    return result.runs[0].scores.physics_kind if result.runs else None


# ------------------------------------------------------------------------------------------------ trace
def _trace(inputs: FigureInputs) -> dict[str, Any]:
    data = inputs.data
    first = next(iter(inputs.rollouts.values()))
    n = len(first.time)
    system = data.system
    return {"time": first.time.tolist(), "components": list(data.state_names), "units": list(inputs.units),
            "truth": data.observed[0, :n].tolist(),
            "models": {label: r.observed[0].tolist() for label, r in inputs.rollouts.items()},
            "system": None if system is None else system.system,
            "params": {} if system is None else {k: np.asarray(getattr(system, k)).tolist()
                                                 for k in type(system).PARAMETERS}}


def _test_system(result):
    """The test set's system, rebuilt from the stored trace (to ask it for its physics)."""
    from simulators.system import get_system

    t = result.figures["trace"]
    return get_system(t["system"]).from_params({k: np.asarray(v, float) for k, v in t["params"].items()})


def _stored_trace(result):
    """The stored trace as arrays: time, truth, each model's rollout (by label), component names and units."""
    t = result.figures["trace"]
    models = {label: np.asarray(states, float) for label, states in t["models"].items()}
    return np.asarray(t["time"]), np.asarray(t["truth"]), models, t["components"], t["units"]


def _rollout(result, colours):
    time, truth, models, names, units = _stored_trace(result)
    fig, ax = new_figure(figsize=(9, 3.5))
    ax.plot(time, truth[:, 0], color="black", lw=2.5, label="exact")
    for label, states in models.items():
        ax.plot(time, states[:, 0], color=colours[label], lw=1.2, label=label)
    ax.set(xlabel="time t [T]", ylabel=f"{names[0]} [{units[0]}]",
           title="Closed-loop rollout of test trajectory 0 (first seed of each model)")
    ax.legend(ncol=4, fontsize=8)
    return fig


def _error(result, colours):
    time, truth, models, names, units = _stored_trace(result)
    fig, ax = new_figure(figsize=(9, 3.5))
    for label, states in models.items():
        err = np.abs(states[:, 0] - truth[:, 0])
        ax.semilogy(time[err > 0], err[err > 0], color=colours[label], lw=1.2, label=label)
    ax.set(xlabel="time t [T]", ylabel=f"|error of {names[0]}| [{units[0]}]",
           title="Error against time (log scale)")
    ax.legend(ncol=4, fontsize=8)
    return fig


def _phase(result, colours):
    _, truth, models, names, units = _stored_trace(result)
    fig, ax = new_figure(figsize=(5, 5))
    ax.plot(truth[:, 0], truth[:, 1], color="black", lw=2.5, label="exact")
    for label, states in models.items():
        ax.plot(states[:, 0], states[:, 1], color=colours[label], lw=1, label=label)
    ax.set(xlabel=f"{names[0]} [{units[0]}]", ylabel=f"{names[1]} [{units[1]}]", title="Phase portrait")
    ax.legend(fontsize=8)
    return fig


def _training(result, colours):
    fig, ax = new_figure(figsize=(9, 3.5))
    for r in _first_runs(result):
        if "loss" not in r.history:
            continue
        ax.semilogy(r.history["loss"], color=colours[r.label], label=f"{r.label} train")
        if "val_loss" in r.history:
            ax.semilogy(r.history["val_loss"], color=colours[r.label], ls="--", label=f"{r.label} validation")
    ax.set(xlabel="epoch", ylabel="one-step loss (scaled increments, MSE)", title="Training curves")
    ax.legend(ncol=2, fontsize=8)
    return fig


def _resonance(result, colours):
    """Learned steady state against the resonance curve (one curve when η, ω0, F0 are shared by the test set;
    otherwise learned against analytic amplitude, point by point)."""
    runs = _first_runs(result)
    first = runs[0].scores.physics
    om = np.asarray(first["drive_frequency"])
    system = _test_system(result)
    shared = all(np.ptp(getattr(system, k)) == 0 for k in ("damping", "natural_frequency", "drive_amplitude"))
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    if shared:
        grid = np.linspace(om.min(), om.max(), 400)
        eta, w0 = float(system.damping[0]), float(system.natural_frequency[0])
        f0 = abs(float(system.drive_amplitude[0, 0]))
        gain, lag = steady_state_response(eta, w0, grid)
        axes[0].plot(grid, f0 * gain, color="black", lw=2, label="F0/√((ω0²−Ω²)²+(ηΩ)²)")
        axes[1].plot(grid, lag, color="black", lw=2, label="atan2(ηΩ, ω0²−Ω²)")
        order = np.argsort(om)
        for r in runs:
            t = r.scores.physics
            axes[0].plot(om[order], np.asarray(t["amplitude"])[order], "o", ms=3, color=colours[r.label],
                         label=r.label)
            axes[1].plot(om[order], np.asarray(t["lag"])[order], "o", ms=3, color=colours[r.label], label=r.label)
        axes[0].set(xlabel="drive frequency Ω [1/T]", ylabel="steady-state amplitude [L]",
                    title=f"Resonance curve (η = {eta:g}, ω0 = {w0:g}, F0 = {f0:g})")
        axes[1].set(xlabel="drive frequency Ω [1/T]", ylabel="phase lag [rad]", title="Phase lag")
    else:
        exact = np.asarray(first["amplitude_exact"])
        line = [exact.min(), exact.max()]
        axes[0].plot(line, line, color="black", lw=1.5, label="exact = learned")
        for r in runs:
            t = r.scores.physics
            axes[0].plot(exact, t["amplitude"], "o", ms=3, color=colours[r.label], label=r.label)
            axes[1].semilogy(om, np.maximum(np.asarray(t["amplitude_rel_error"]), 1e-17), "o", ms=3,
                             color=colours[r.label], label=r.label)
        axes[0].set(xlabel="analytic amplitude [L]", ylabel="learned steady-state amplitude [L]",
                    title="Steady-state amplitude, trajectory by trajectory")
        axes[1].set(xlabel="drive frequency Ω [1/T]", ylabel="|amplitude / analytic − 1|",
                    title="Relative amplitude error (log scale)")
    for ax in axes:
        ax.legend(fontsize=7)
    return fig


def _decay(result, colours):
    """Damping ratio recovered from each rollout's maxima against the true ζ (under-damped trajectories)."""
    zeta = _test_system(result).damping_ratio
    under = zeta < 1
    top = float(zeta[under].max()) if under.any() else 1.0
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    axes[0].plot([0, top], [0, top], color="black", lw=1.5, label="recovered = true")
    for r in _first_runs(result):
        t = r.scores.physics
        axes[0].plot(zeta[under], np.asarray(t["damping_ratio"], float)[under], "o", ms=3, color=colours[r.label],
                     label=r.label)
        axes[1].semilogy(zeta[under], np.maximum(np.asarray(t["damping_ratio_error"], float)[under], 1e-17), "o",
                         ms=3, color=colours[r.label], label=r.label)
    axes[0].set(xlabel="true damping ratio ζ = η/(2ω0)", ylabel="ζ from the rollout's log decrement",
                title="Recovered damping ratio (under-damped test trajectories)")
    axes[1].set(xlabel="true damping ratio ζ", ylabel="|ζ error|", title="Damping-ratio error (log scale)")
    for ax in axes:
        ax.legend(fontsize=7)
    return fig


def _eigen_collect(inputs: FigureInputs) -> dict[str, Any] | None:
    """Median and range over the test starts of the Rayleigh quotient's relative error, per model and exact."""
    from .analysis import rayleigh_error_trace

    system = inputs.data.system
    if system is None or system.physics_analysis(tuple(inputs.data.state_names)) != "eigen":
        return None
    first = next(iter(inputs.rollouts.values()))
    n = len(first.time)

    def band(states):
        trace = np.maximum(rayleigh_error_trace(states, system.matrix), 1e-17)
        return {"median": np.median(trace, axis=0).tolist(), "min": trace.min(axis=0).tolist(),
                "max": trace.max(axis=0).tolist()}

    return {"time": first.time.tolist(), "exact": band(inputs.data.observed[:, :n]),
            "models": {label: band(r.observed) for label, r in inputs.rollouts.items()}}


def _eigen(result, colours):
    """Relative error of the Rayleigh quotient against time: median and range over the test starts."""
    d = result.figures["eigenvalue"]
    time = np.asarray(d["time"])
    fig, ax = new_figure(figsize=(9, 4))
    ax.semilogy(time, d["exact"]["median"], color="black", lw=2.5, label="exact")
    for label, band in d["models"].items():
        ax.semilogy(time, np.asarray(band["median"], float), color=colours[label], lw=1.2, label=f"{label} (median)")
        ax.fill_between(time, np.asarray(band["min"], float), np.asarray(band["max"], float), color=colours[label],
                        alpha=0.08)
    ax.set(xlabel="time t [T]", ylabel="|xᵀAx/xᵀx − λmax| / |λmax|",
           title="Eigenvalue convergence of the rollouts (first seed; band: all test starts)")
    ax.legend(ncol=3, fontsize=8)
    return fig


def _backbone(result, colours):
    """Period against energy: each model's measured period from every test start against the exact T(E)."""
    runs = _first_runs(result)
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    first = runs[0].scores.physics
    energy, exact = np.asarray(first["energy"], float), np.asarray(first["period_exact"], float)
    order = np.argsort(energy)
    axes[0].plot(energy[order], exact[order], color="black", lw=2, marker=".", label="exact T(E)")
    for r in runs:
        t = r.scores.physics
        axes[0].plot(t["energy"], t["period"], "o", ms=3, color=colours[r.label], label=r.label)
        err = np.asarray(t["period_rel_error"], float)
        axes[1].semilogy(t["energy"], np.maximum(err, 1e-17), "o", ms=3, color=colours[r.label], label=r.label)
    axes[0].set(xlabel="energy E of the start", ylabel="period [T]", title="Backbone: period against energy")
    axes[1].set(xlabel="energy E of the start", ylabel="|period / T(E) − 1|", title="Relative period error (log)")
    for ax in axes:
        ax.legend(fontsize=7)
    return fig


def _physics_per_start(result, colours):
    """Each headline figure of the study's physics analysis, start by start, for every model (log scale)."""
    from .analysis import ANALYSES

    analysis = ANALYSES[_physics_kind(result)]
    runs = _first_runs(result)
    keys = list(analysis.headlines)
    fig, axes = new_figure(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for r in runs:
            v = np.abs(np.asarray(r.scores.physics[key], float))
            ax.semilogy(np.arange(v.size), np.maximum(v, 1e-17), "o", ms=3, color=colours[r.label], label=r.label)
        ax.set(xlabel="test start", ylabel=analysis.headlines[key], title=analysis.headlines[key])
    axes[0][0].legend(fontsize=7)
    return fig


# ------------------------------------------------------------------------------------------ diagnostics
def _diagnosed_runs(result, key: str) -> list:
    """The first seed of each model whose diagnostics hold ``key``."""
    return [r for r in _first_runs(result) if key in r.diagnostics]


def _parameters(result, colours):
    """Physical parameters read from each model's step Jacobian, per test trajectory (median over its points),
    against the model's input parameter where it has one (else the trajectory): the values beside the truth
    (top) and their relative error (bottom, log). Persistence, which has no dynamics to read, is left out."""
    runs = [r for r in _diagnosed_runs(result, "per_trajectory") if r.kind != "persistence"]
    names = list(runs[0].diagnostics["per_trajectory"])
    inputs = result.config.get("features", {}).get("parameters", [])
    params = result.figures.get("trace", {}).get("params", {})
    if inputs and inputs[0] in params:
        x = np.asarray(params[inputs[0]], float).reshape(len(np.asarray(params[inputs[0]])), -1)[:, 0]
        xlabel = f"{inputs[0]} (given to the models)"
    else:
        x, xlabel = None, "test trajectory"
    fig, axes = new_figure(2, len(names), figsize=(4.6 * len(names), 6.4), squeeze=False, sharex="col")
    for col, name in enumerate(names):
        truth = np.asarray(runs[0].diagnostics["per_trajectory_truth"][name], float)
        xs = np.arange(truth.size) if x is None else x
        order = np.argsort(xs)
        axes[0][col].plot(xs[order], truth[order], color="black", lw=2, label="truth")
        for r in runs:
            value = np.asarray(r.diagnostics["per_trajectory"][name], float)[order]
            axes[0][col].plot(xs[order], value, "o-", ms=3, lw=0.8, color=colours[r.label], label=r.label)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(value / truth[order] - 1)
            axes[1][col].semilogy(xs[order], np.maximum(rel, 1e-17), "o-", ms=3, lw=0.8, color=colours[r.label])
        axes[0][col].set(ylabel=name, title=f"{name} read from the step Jacobian")
        axes[1][col].set(xlabel=xlabel, ylabel=f"|{name} / truth − 1|")
    axes[0][0].legend(fontsize=7)
    return fig


def _increment_map(result, colours):
    """Where in state space each learned map's increment misses the exact one: the test states (first two
    components) coloured by log10 ‖g − exact increment‖ (relative), beside the O(Δt) gap of the exact
    increment to the vector field."""
    runs = [r for r in _diagnosed_runs(result, "increments") if r.kind not in ("persistence", "euler", "rk4")][:4]
    maps = [r.diagnostics["increments"]["map"] for r in runs]
    if not runs:
        return None
    panels = [("exact increment − f (O(Δt))", maps[0]["floor"])] + [(r.label, m["error"]) for r, m in zip(runs, maps)]
    values = np.log10(np.maximum(np.concatenate([np.asarray(v, float) for _, v in panels]), 1e-17))
    lo, hi = float(np.min(values)), float(np.max(values))
    fig, axes = new_figure(1, len(panels), figsize=(3.8 * len(panels) + 0.8, 3.6), squeeze=False)
    names = result.figures.get("trace", {}).get("components", ["s0", "s1"])
    for ax, (title, v), m in zip(axes[0], panels, [maps[0], *maps]):
        art = ax.scatter(m["x"], m["y"], c=np.log10(np.maximum(np.asarray(v, float), 1e-17)), s=9, cmap="viridis",
                         vmin=lo, vmax=hi)
        ax.set(xlabel=names[0], ylabel=names[min(1, len(names) - 1)], title=title)
    fig.colorbar(art, ax=axes[0][-1], label="log10 relative difference (shared scale)")
    return fig


register_figure(Figure("rollout", lambda r: "trace" in r.figures, _rollout))
register_figure(Figure("error", lambda r: "trace" in r.figures, _error))
register_figure(Figure("phase", lambda r: "trace" in r.figures and len(r.figures["trace"]["components"]) >= 2,
                       _phase))
register_figure(Figure("training", lambda r: any("loss" in run.history for run in r.runs), _training))
register_figure(Figure("resonance", lambda r: _physics_kind(r) == "resonance", _resonance))
register_figure(Figure("decay", lambda r: _physics_kind(r) == "decay", _decay))
register_figure(Figure("backbone", lambda r: _physics_kind(r) == "period", _backbone))
register_figure(Figure("physics", lambda r: _physics_kind(r) in ("kepler", "limit_cycle", "invariant_drift"),
                       _physics_per_start))
register_figure(Figure("eigenvalue", lambda r: "eigenvalue" in r.figures, _eigen, collect=_eigen_collect))
register_figure(Figure("parameters", lambda r: bool(_diagnosed_runs(r, "per_trajectory")), _parameters))
register_figure(Figure("increments", lambda r: any(run.kind not in ("persistence", "euler", "rk4")
                                                   for run in _diagnosed_runs(r, "increments")), _increment_map))
