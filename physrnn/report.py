"""Study reports: a self-contained HTML page (figures embedded), Markdown, and JSON/CSV of every metric."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from simulators.trajectory_file import read_trajectories

from .analysis import HEADLINES

__all__ = ["write_atomic", "write_pages", "write_report", "write_sweep_report"]

_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
            "#1f78b4", "#b2df8a"]


def _colour_map(labels: list[str]) -> dict[str, str]:
    """One colour per model label, the same in every figure of a report."""
    return {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(labels)}


def _first_runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The first run (lowest seed) of each model, for the per-trajectory figures."""
    seen, out = set(), []
    for row in result["rows"]:
        if row["label"] not in seen:
            seen.add(row["label"])
            out.append(row)
    return out


def _figures(result: dict[str, Any]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _first_runs(result)
    colours = _colour_map([r["label"] for r in runs])
    truth = read_trajectories(result["test_file"])
    rolled = {r["label"]: read_trajectories(r["rollout_file"]) for r in runs}
    first = next(iter(rolled.values()))
    names, units = first.state_names, first.state_units
    t = first.time
    true = truth.states[first.params["source_trajectory"][0], : len(t), : len(names)]
    figures = {}

    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(t, true[:, 0], color="black", lw=2.5, label="exact")
    for label, r in rolled.items():
        ax.plot(t, r.states[0, :, 0], color=colours[label], lw=1.2, label=label)
    ax.set(xlabel="time t [T]", ylabel=f"{names[0]} [{units[0]}]",
           title="Closed-loop rollout of test trajectory 0 (first seed of each model)")
    ax.legend(ncol=4, fontsize=8)
    figures["rollout"] = _png(fig)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, r in rolled.items():
        err = np.abs(r.states[0, :, 0] - true[:, 0])
        ax.semilogy(t[err > 0], err[err > 0], color=colours[label], lw=1.2, label=label)
    ax.set(xlabel="time t [T]", ylabel=f"|error of {names[0]}| [{units[0]}]", title="Error against time (log scale)")
    ax.legend(ncol=4, fontsize=8)
    figures["error"] = _png(fig)

    if len(names) >= 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(true[:, 0], true[:, 1], color="black", lw=2.5, label="exact")
        for label, r in rolled.items():
            ax.plot(r.states[0, :, 0], r.states[0, :, 1], color=colours[label], lw=1, label=label)
        ax.set(xlabel=f"{names[0]} [{units[0]}]", ylabel=f"{names[1]} [{units[1]}]", title="Phase portrait")
        ax.legend(fontsize=8)
        figures["phase"] = _png(fig)

    trained = [r for r in runs if "loss" in r["history"]]
    if trained:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        for r in trained:
            ax.semilogy(r["history"]["loss"], color=colours[r["label"]], label=f"{r['label']} train")
            if "val_loss" in r["history"]:
                ax.semilogy(r["history"]["val_loss"], color=colours[r["label"]], ls="--",
                            label=f"{r['label']} validation")
        ax.set(xlabel="epoch", ylabel="one-step loss (scaled increments, MSE)", title="Training curves")
        ax.legend(ncol=2, fontsize=8)
        figures["training"] = _png(fig)
    kind = runs[0].get("physics", {}).get("kind")
    if kind == "resonance":
        figures["resonance"] = _resonance_figure(runs, truth, colours, plt)
    elif kind == "decay":
        figures["decay"] = _decay_figure(runs, truth, colours, plt)
    elif kind == "eigen":
        figures["eigenvalue"] = _eigen_figure(runs, rolled, truth, colours, plt)
    return figures


def _resonance_figure(runs, truth, colours, plt) -> bytes:
    """Learned steady state against the resonance curve (one curve when η, ω0, F0 are shared by the test set;
    otherwise learned against analytic amplitude, point by point)."""
    from simulators import steady_state_response

    first = runs[0]["physics_trajectories"]
    om = np.asarray(first["drive_frequency"])
    p = truth.params
    shared = all(np.ptp(np.asarray(p[k], float)) == 0 for k in ("damping", "natural_frequency", "drive_amplitude"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if shared:
        grid = np.linspace(om.min(), om.max(), 400)
        eta, w0 = float(np.ravel(p["damping"])[0]), float(np.ravel(p["natural_frequency"])[0])
        f0 = abs(float(np.ravel(p["drive_amplitude"])[0]))
        gain, lag = steady_state_response(eta, w0, grid)
        axes[0].plot(grid, f0 * gain, color="black", lw=2, label="F0/√((ω0²−Ω²)²+(ηΩ)²)")
        axes[1].plot(grid, lag, color="black", lw=2, label="atan2(ηΩ, ω0²−Ω²)")
        order = np.argsort(om)
        for r in runs:
            t = r["physics_trajectories"]
            axes[0].plot(om[order], np.asarray(t["amplitude"])[order], "o", ms=3, color=colours[r["label"]],
                         label=r["label"])
            axes[1].plot(om[order], np.asarray(t["lag"])[order], "o", ms=3, color=colours[r["label"]],
                         label=r["label"])
        axes[0].set(xlabel="drive frequency Ω [1/T]", ylabel="steady-state amplitude [L]",
                    title=f"Resonance curve (η = {eta:g}, ω0 = {w0:g}, F0 = {f0:g})")
        axes[1].set(xlabel="drive frequency Ω [1/T]", ylabel="phase lag [rad]", title="Phase lag")
    else:
        exact = np.asarray(first["amplitude_exact"])
        line = [exact.min(), exact.max()]
        axes[0].plot(line, line, color="black", lw=1.5, label="exact = learned")
        for r in runs:
            t = r["physics_trajectories"]
            axes[0].plot(exact, t["amplitude"], "o", ms=3, color=colours[r["label"]], label=r["label"])
            axes[1].semilogy(om, np.maximum(np.asarray(t["amplitude_rel_error"]), 1e-17), "o", ms=3,
                             color=colours[r["label"]], label=r["label"])
        axes[0].set(xlabel="analytic amplitude [L]", ylabel="learned steady-state amplitude [L]",
                    title="Steady-state amplitude, trajectory by trajectory")
        axes[1].set(xlabel="drive frequency Ω [1/T]", ylabel="|amplitude / analytic − 1|",
                    title="Relative amplitude error (log scale)")
    for ax in axes:
        ax.legend(fontsize=7)
    return _png(fig)


def _decay_figure(runs, truth, colours, plt) -> bytes:
    """Damping ratio recovered from each rollout's maxima against the true ζ (under-damped trajectories)."""
    zeta = np.asarray(truth.params["damping"], float) / (2 * np.asarray(truth.params["natural_frequency"], float))
    under = zeta < 1  # the rollouts hold the test trajectories in order
    top = float(zeta[under].max()) if under.any() else 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot([0, top], [0, top], color="black", lw=1.5, label="recovered = true")
    for r in runs:
        t = r["physics_trajectories"]
        axes[0].plot(zeta[under], np.asarray(t["damping_ratio"], float)[under], "o", ms=3,
                     color=colours[r["label"]], label=r["label"])
        axes[1].semilogy(zeta[under], np.maximum(np.asarray(t["damping_ratio_error"], float)[under], 1e-17), "o",
                         ms=3, color=colours[r["label"]], label=r["label"])
    axes[0].set(xlabel="true damping ratio ζ = η/(2ω0)", ylabel="ζ from the rollout's log decrement",
                title="Recovered damping ratio (under-damped test trajectories)")
    axes[1].set(xlabel="true damping ratio ζ", ylabel="|ζ error|", title="Damping-ratio error (log scale)")
    for ax in axes:
        ax.legend(fontsize=7)
    return _png(fig)


def _eigen_figure(runs, rolled, truth, colours, plt) -> bytes:
    """Relative error of the Rayleigh quotient against time: median and range over the test starts."""
    from .analysis import rayleigh_error_trace

    fig, ax = plt.subplots(figsize=(9, 4))
    first = next(iter(rolled.values()))
    matrix = first.params["matrix"]
    src = first.params["source_trajectory"]
    exact = rayleigh_error_trace(truth.states[src][:, : first.n_steps], matrix)
    tiny = 1e-17
    ax.semilogy(first.time, np.maximum(np.median(exact, axis=0), tiny), color="black", lw=2.5, label="exact")
    for label, r in rolled.items():
        trace = np.maximum(rayleigh_error_trace(r.states, r.params["matrix"]), tiny)
        ax.semilogy(r.time, np.median(trace, axis=0), color=colours[label], lw=1.2, label=f"{label} (median)")
        ax.fill_between(r.time, trace.min(axis=0), trace.max(axis=0), color=colours[label], alpha=0.08)
    ax.set(xlabel="time t [T]", ylabel="|xᵀAx/xᵀx − λmax| / |λmax|",
           title="Eigenvalue convergence of the rollouts (first seed; band: all test starts)")
    ax.legend(ncol=3, fontsize=8)
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _pm(mean, std, fmt: str = ".3e", spread: str = ".1e") -> str:
    if mean is None or not np.isfinite(mean):
        return "–" if mean is None else "nan"
    return f"{mean:{fmt}} ± {std:{spread}}"


def _summary_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    summary = result["summary"]
    comps = summary[0]["components"]
    periods = "valid_periods_median_mean" in summary[0]
    energy = "energy_error_mean" in summary[0]
    head = (["model", "seeds"] + [f"RMSE {c}" for c in comps] + [f"NRMSE {c}" for c in comps]
            + ["max error", "valid time / horizon"] + (["valid periods"] if periods else [])
            + (["energy error"] if energy else []) + ["diverged", "fit s"])
    rows = []
    for s in summary:
        rows.append([s["label"], str(s["n_seeds"])]
                    + [_pm(m, d) for m, d in zip(s["rmse_mean"], s["rmse_std"])]
                    + [f"{v:.3e}" for v in s["nrmse_mean"]]
                    + [f"{s['max_error']:.2e}",
                       f"{_pm(s['valid_time_median_mean'], s['valid_time_median_std'], '.1f', '.1f')} / "
                       f"{s['horizon']:.1f}"]
                    + ([_pm(s["valid_periods_median_mean"], s["valid_periods_median_std"], ".1f", ".1f")]
                       if periods else [])
                    + ([_pm(s["energy_error_mean"], s["energy_error_std"], ".2e", ".1e")] if energy else [])
                    + [str(s["diverged"]), f"{s['fit_seconds_mean']:.2f}"])
    return head, rows


def _group_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Per group of test trajectories: RMSE of the first component and the first physical figure."""
    summary = result["summary"]
    labels = list(summary[0].get("groups", {}))
    if not labels:
        return None
    comp = summary[0]["components"][0]
    kind = summary[0].get("physics_kind")
    key, name = next(iter(HEADLINES[kind].items())) if kind else (None, None)
    counts = {g: summary[0]["groups"][g]["n_traj"] for g in labels}
    with_physics = {g: bool(key) and "physics" in summary[0]["groups"][g] for g in labels}
    head = ["model"]
    for g in labels:
        head.append(f"{g} ({counts[g]}): RMSE {comp}")
        if with_physics[g]:
            head.append(f"{g}: {name}")
    rows = []
    for s in summary:
        row = [s["label"]]
        for g in labels:
            part = s["groups"][g]
            row.append(_pm(part["rmse_mean"][0], part["rmse_std"][0]))
            if with_physics[g]:
                row.append(_pm(*part["physics"][key], ".2e", ".1e"))
        rows.append(row)
    return head, rows


def _physics_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    summary = result["summary"]
    kind = summary[0].get("physics_kind")
    if not kind:
        return None
    keys = list(summary[0]["physics"])
    titles = {**HEADLINES[kind], "eigenvalue_rel_error_max": "eigenvalue rel. error (worst start)",
              "amplitude_rel_error_max": "amplitude rel. error (worst Ω)"}
    head = ["model"] + [titles[k] for k in keys]
    rows = [[s["label"]] + [_pm(*s["physics"][k], ".2e", ".1e") for k in keys] for s in summary]
    exact = result.get("physics_exact") or {}
    rows.append(["exact solution (estimator floor)"] + [f"{exact[k]:.2e}" if k in exact else "–" for k in keys])
    return head, rows


_PHYSICS_NOTES = {
    "decay": "Free motion: ζ and ω_d recovered from the closed-loop rollout's maxima (log decrement), against "
             "ζ = η/(2ω0) and ω_d = ω0√(1−ζ²); median over the under-damped test trajectories (critically and "
             "over-damped motion has no maxima to count).",
    "resonance": "Driven motion: amplitude and phase lag at Ω fitted by least squares on the last "
                 "{steady:.0%} of the closed-loop rollout, against F0/√((ω0²−Ω²)²+(ηΩ)²) and atan2(ηΩ, ω0²−Ω²); "
                 "median over the test trajectories, and the worst of them (usually at the resonance).",
    "eigen": "Eigen flow: the Rayleigh quotient xᵀAx/xᵀx of each rollout's last state against λmax of the flow's "
             "matrix from numpy.linalg.eigh (relative error; for a flow of −A this is λmin(A) = −λmax(−A)), the "
             "angle to the eigenvector and the largest relative drift of ‖x‖ (conserved exactly by the flow); "
             "median over the test starts, and the worst start.",
}


def _markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
            + "</table>")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary name beside ``path`` and rename it: never a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two processes writing one path never share a tmp
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    tmp.replace(path)
    return path


def write_report(result: dict[str, Any], out_dir: str | Path, *, study_file: str = "") -> Path:
    """Write report.html, report.md, metrics.json, metrics.csv, config.json, study.log and figures/.

    Each file is written to a temporary name and renamed, so an interrupted run leaves the last complete
    report in place.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = _figures(result)
    for name, png in figures.items():
        write_atomic(out / "figures" / f"{name}.png", png)
    runs = [{k: v for k, v in r.items() if k not in ("history", "physics_trajectories")} for r in result["rows"]]
    metrics = {"summary": result["summary"], "physics_exact": result.get("physics_exact"),
               "groups": result.get("groups", {}), "runs": runs}
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str))
    write_atomic(out / "config.json", json.dumps(result["config"], indent=2))
    write_atomic(out / "study.log", "\n".join(result.get("log", [])) + "\n")
    tables = [("Summary", _summary_table(result), None)]
    groups = _group_table(result)
    if groups:
        tables.append((f"By group ({result['config']['rollout'].get('group_by')})", groups,
                       "Mean ± std over seeds within each group of test trajectories (number in brackets)."))
    physics = _physics_table(result)
    if physics:
        kind = result["summary"][0]["physics_kind"]
        tables.append(("Physics recovered from the rollouts", physics,
                       _PHYSICS_NOTES[kind].format(steady=result["config"]["rollout"].get("steady_fraction", 1 / 3))))
    if result.get("targets"):
        tables.append(("Targets", (["model", "metric", "worst seed", "bound", "met"],
                                   [[t["label"], t["metric"], f"{t['worst']:.3e}", f"{t['bound']:.1e}",
                                     "yes" if t["met"] else "NO"] for t in result["targets"]]),
                       "Each target set in the study config, checked on the model's worst seed (and worst "
                       "component); a diverged seed fails."))
    reproduce = f"physrnn study {study_file}" if study_file else "physrnn study studies/NAME.toml"
    notes = ("Scores are over the closed-loop steps of the test trajectories (after the true context), mean ± std "
             "over seeds. NRMSE = RMSE / standard deviation in time of the true signal. Valid time = time until "
             f"the error first exceeds {result['config']['rollout']['valid_fraction']:g} of the true signal's range "
             "(median over test trajectories); in periods of the drive (2π/Ω), or of the free motion (2π/ω_d, "
             "2π/ω0 when not under-damped). Energy error = max over time of |E − E_exact| / max E_exact, "
             "E = v²/2 + ω0²x²/2. Physics baselines (persistence, Euler, RK4) start from the true full state at "
             "the end of the context and have no seed.")
    tables[0] = (tables[0][0], tables[0][1], notes)
    facts = [("Reproduce", f"`{reproduce}`"), ("Training data", f"`{result['train_file']}`"),
             ("Test data", f"`{result['test_file']}`"),
             ("Resolved config", "`config.json`; log: `study.log`; every metric: `metrics.json`, `metrics.csv`")]
    return write_pages(out, f"Study: {result['study']}", result["description"], tables, figures, facts, result,
                       csv_name="metrics.csv")


Table = tuple[str, tuple[list[str], list[list[str]]], "str | None"]


def write_pages(out: Path, title: str, description: str, tables: list[Table], figures: dict[str, bytes],
                facts: list[tuple[str, str]], result: dict[str, Any], *, csv_name: str) -> Path:
    """report.md, report.html (figures embedded) and the tables as CSV: titled tables with their notes, the
    figures, then what was run (``facts``, with `code` in backticks), software, wall time and the config."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    for name, (head, rows), _ in tables:
        writer.writerow([name])
        writer.writerow(head)
        writer.writerows(rows)
        writer.writerow([])
    write_atomic(out / csv_name, buf.getvalue())
    facts = facts + [("Software", ", ".join(f"{k} {v}" for k, v in result["software"].items())),
                     ("Wall time", f"{result['seconds']:.1f} s")]
    config = json.dumps(result["config"], indent=2)

    md = [f"# {title}", "", description, ""]
    for name, (head, rows), note in tables:
        md += [f"## {name}", ""] + _markdown_table(head, rows) + [""] + ([note, ""] if note else [])
    md += ["## Figures", ""] + [f"![{n}](figures/{n}.png)" for n in figures]
    md += ["", "## What was run", ""] + [f"- {k}: {v}" for k, v in facts] + ["", "```json", config, "```", ""]
    write_atomic(out / "report.md", "\n".join(md))

    def img(name: str) -> str:
        return (f'<figure><img alt="{name}" src="data:image/png;base64,'
                f'{base64.b64encode(figures[name]).decode()}"></figure>')

    def code(text: str) -> str:  # `x` -> <code>x</code>, the rest escaped
        parts = html.escape(text).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    sections = "".join(f"<h2>{html.escape(name)}</h2>{_html_table(head, rows)}"
                       + (f"<p>{html.escape(note)}</p>" if note else "") for name, (head, rows), note in tables)
    items = "".join(f"<li>{html.escape(k)}: {code(v)}</li>" for k, v in facts)
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
th{{background:#f3f3f3}}td:first-child{{text-align:left}}img{{max-width:100%}}pre{{background:#f7f7f7;padding:1em;
overflow-x:auto}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>
{sections}
<h2>Figures</h2>{''.join(img(n) for n in figures)}
<h2>What was run</h2><ul>{items}</ul>
<pre>{html.escape(config)}</pre></body></html>"""
    write_atomic(out / "report.html", page)
    return out / "report.html"


# ----------------------------------------------------------------------------------------------- sweeps
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if not np.isfinite(value) else f"{value:.3e}"
    return str(value)


def _axis_figure(result: dict[str, Any]) -> bytes | None:
    """The objective against each axis: every trial a dot, the mean over seeds a line, baselines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in result["trials"] if t["status"] == "ok"]
    axes_names = list(dict.fromkeys(k for t in result["trials"] for k in t["values"] if k != "seed"))
    if not trials or not axes_names:
        return None
    minimise = result["direction"] == "min"
    ys = np.array([t["objective"] for t in trials], float)
    log_y = minimise and np.all(ys[np.isfinite(ys)] > 0)
    ncols = min(3, len(axes_names))
    nrows = -(-len(axes_names) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    dts = {b["dt"] for b in result["baselines"]}
    colours = _colour_map([b["label"] for b in result["baselines"]])
    for ax, name in zip(grid.flat, axes_names):
        mine = [t for t in trials if name in t["values"]]
        values = [t["values"][name] for t in mine]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        levels = sorted(set(values), key=lambda v: (isinstance(v, str), v))
        if numeric and len(levels) > 1 and min(levels) > 0 and max(levels) / min(levels) > 20:
            ax.set_xscale("log")
        x = np.array(values, float) if numeric else np.array([levels.index(v) for v in values], float)
        y = np.array([t["objective"] for t in mine], float)
        ax.plot(x, np.where(np.isfinite(y), y, np.nan), "o", alpha=0.5, color="#1b9e77", label="trial (one seed)")
        if len(levels) <= 12:
            lx = np.array(levels, float) if numeric else np.arange(len(levels), dtype=float)
            means = [np.mean([t["objective"] for t in mine if t["values"][name] == v]) for v in levels]
            ax.plot(lx, means, "-", color="#333333", label="mean over trials")
        if not numeric:
            ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        if len(dts) == 1:
            for b in result["baselines"]:  # persistence is in the table; its line would only squeeze the plot
                if b["label"] != "persistence" and np.isfinite(b["objective"]) and (b["objective"] > 0 or not log_y):
                    ax.axhline(b["objective"], ls="--", lw=1, color=colours[b["label"]], label=b["label"])
        ax.set_xlabel(name)
        ax.set_ylabel(result["objective"])
        if log_y:
            ax.set_yscale("log")
    for ax in list(grid.flat)[len(axes_names):]:
        ax.set_visible(False)
    grid.flat[0].legend(fontsize=7)
    return _png(fig)


def _seed_figure(result: dict[str, Any], top: int = 20) -> bytes | None:
    """The best points and the objective of each of their seeds: how far a ranking holds over seeds."""
    import matplotlib.pyplot as plt

    ranking = result["ranking"][:top]
    if not ranking:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(ranking) + 1.2))
    for i, p in enumerate(ranking):
        y = np.full(len(p["objectives"]), i, float)
        ax.plot(p["objectives"], y, "o", color="#1b9e77", alpha=0.6)
        if np.isfinite(p["mean"]):
            ax.plot([p["mean"]], [i], "|", color="#333333", markersize=14)
    ax.set_yticks(range(len(ranking)), [p["point"] for p in ranking], fontsize=7)
    ax.invert_yaxis()
    finite = [v for p in ranking for v in p["objectives"] if np.isfinite(v)]
    if result["direction"] == "min" and finite and min(finite) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(f"{result['objective']} (dots: seeds, bar: mean)")
    return _png(fig)


def write_sweep_report(result: dict[str, Any], out_dir: str | Path, *, sweep_file: str = "") -> Path:
    """Write a sweep's report.html, report.md, trials.csv, ranking.csv and figures/ into ``out_dir``."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = {name: png for name, png in (("objective_by_axis", _axis_figure(result)),
                                           ("seeds", _seed_figure(result))) if png is not None}
    for name, png in figures.items():
        write_atomic(out / "figures" / f"{name}.png", png)
    better = "smaller" if result["direction"] == "min" else "larger"
    best_study = {t["id"]: t["study_file"] for t in result["trials"]}
    ranking = (["rank", "point", "mean ± std over seeds", "best seed", "worst seed", "seeds", "failed", "best trial"],
               [[str(i + 1), p["point"], _pm(p["mean"], p["std"]), _fmt(p["best"]), _fmt(p["worst"]),
                 str(len(p["seeds"])), str(p["failed"]), p["best_trial"] or "–"]
                for i, p in enumerate(result["ranking"])])
    tables: list[Table] = [(
        f"Ranking by {result['objective']} ({better} is better)", ranking,
        f"Each point's trials differ only in their seed. {result['objective']} is measured on closed-loop rollouts "
        "from the base study's held-out test starts, at the worst component; a diverged or failed seed makes the "
        "mean NaN and ranks the point last.")]
    if result["baselines"]:
        tables.append(("Baselines of the base study", (
            ["model", "dt", result["objective"], "valid time"],
            [[b["label"], f"{b['dt']:g}", _fmt(b["objective"]), _fmt(b.get("valid_time_median", np.nan))]
             for b in result["baselines"]]), "The same test starts and horizon as every trial."))
    failed = [t for t in result["trials"] if t["status"] != "ok"]
    if failed:
        tables.append(("Failed trials", (["trial", "point", "seed", "error"],
                                         [[t["id"], t["point"], str(t["values"]["seed"]), t["error"]] for t in failed]),
                       "Each trial's log is trials/ID/trial.log; the sweep went on without them."))
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = list(dict.fromkeys(k for t in result["trials"] for k in t["values"]))
    writer.writerow(["id", "point", *names, "status", result["objective"], "seconds", "error"])
    for t in result["trials"]:
        writer.writerow([t["id"], t["point"], *[t["values"].get(k, "") for k in names], t["status"],
                         t.get("objective", ""), f"{t.get('seconds', float('nan')):.2f}", t.get("error", "")])
    write_atomic(out / "trials.csv", buf.getvalue())
    best = result["ranking"][0] if result["ranking"] else None
    facts = [("Reproduce", f"`physrnn sweep {sweep_file or 'studies/sweeps/NAME.toml'}` (finished trials are kept)")]
    if best and best["best_trial"]:
        facts.append(("Retrain the best trial alone", f"`physrnn study {best_study[best['best_trial']]}`"))
    facts += [("Trials", f"{len(result['trials'])} ({len(failed)} failed); each in `trials/ID/` with its "
                         "`study.json`, `result.json` and `trial.log`; every figure in `results.json`, `trials.csv`")]
    return write_pages(out, f"Sweep: {result['sweep']}", result["description"], tables, figures, facts, result,
                       csv_name="ranking.csv")
