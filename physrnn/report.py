"""Study reports: a self-contained HTML page (figures embedded), Markdown, and JSON/CSV of every metric."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from simulators.trajectory_file import read_trajectories

__all__ = ["write_report"]

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
    ax.set(xlabel="time t [T]", ylabel=f"{names[0]} [{units[0]}]", title="Closed-loop rollout of test trajectory 0")
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
    return figures


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _summary_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    comps = result["summary"][0]["components"]
    head = (["model", "seeds"] + [f"RMSE {c} (± std over seeds)" for c in comps] + [f"NRMSE {c}" for c in comps]
            + ["max error", "valid time / horizon", "diverged", "fit s"])
    rows = []
    for s in result["summary"]:
        rows.append([s["label"], str(s["n_seeds"])]
                    + [f"{m:.3e} ± {d:.1e}" for m, d in zip(s["rmse_mean"], s["rmse_std"])]
                    + [f"{v:.3e}" for v in s["nrmse_mean"]]
                    + [f"{s['max_error']:.2e}", f"{s['valid_time_mean']:.1f} ± {s['valid_time_std']:.1f} / "
                                                 f"{s['horizon']:.1f}", str(s["diverged"]),
                       f"{s['fit_seconds_mean']:.2f}"])
    return head, rows


def write_report(result: dict[str, Any], out_dir: str | Path, *, study_file: str = "") -> Path:
    """Write report.html, report.md, metrics.json, metrics.csv and figures/ for a study result."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = _figures(result)
    for name, png in figures.items():
        (out / "figures" / f"{name}.png").write_bytes(png)
    (out / "metrics.json").write_text(json.dumps({"summary": result["summary"], "runs": [
        {k: v for k, v in r.items() if k != "history"} for r in result["rows"]]}, indent=2, default=str))
    head, rows = _summary_table(result)
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        writer.writerows(rows)
    reproduce = f"physrnn study {study_file}" if study_file else "physrnn study studies/NAME.toml"
    notes = ("Scores are over the closed-loop steps of the test trajectories (after the true context). NRMSE = RMSE "
             "/ standard deviation in time of the true signal. Valid time = time until the error first exceeds "
             f"{result['config']['rollout']['valid_fraction']:g} of the true signal's range (median over test "
             "trajectories, then mean ± std over seeds).")
    versions = ", ".join(f"{k} {v}" for k, v in result["software"].items())

    md = [f"# Study: {result['study']}", "", result["description"], "", "## Summary", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", notes, "", "## Figures", ""] + [f"![{n}](figures/{n}.png)" for n in figures]
    md += ["", "## What was run", "", f"- Reproduce: `{reproduce}`", f"- Training data: `{result['train_file']}`",
           f"- Test data: `{result['test_file']}`", f"- Software: {versions}", f"- Wall time: {result['seconds']:.1f} s",
           "", "```json", json.dumps(result["config"], indent=2), "```", ""]
    (out / "report.md").write_text("\n".join(md))

    def img(name: str) -> str:
        return (f'<figure><img alt="{name}" src="data:image/png;base64,'
                f'{base64.b64encode(figures[name]).decode()}"></figure>')

    table = ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
             + "</table>")
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Study: {html.escape(result['study'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
th{{background:#f3f3f3}}td:first-child{{text-align:left}}img{{max-width:100%}}pre{{background:#f7f7f7;padding:1em;
overflow-x:auto}}</style></head><body>
<h1>Study: {html.escape(result['study'])}</h1><p>{html.escape(result['description'])}</p>
<h2>Summary</h2>{table}<p>{html.escape(notes)}</p>
<h2>Figures</h2>{''.join(img(n) for n in figures)}
<h2>What was run</h2><ul><li>Reproduce: <code>{html.escape(reproduce)}</code></li>
<li>Training data: <code>{html.escape(result['train_file'])}</code></li>
<li>Test data: <code>{html.escape(result['test_file'])}</code></li>
<li>Software: {html.escape(versions)}</li><li>Wall time: {result['seconds']:.1f} s</li></ul>
<pre>{html.escape(json.dumps(result['config'], indent=2))}</pre></body></html>"""
    (out / "report.html").write_text(page)
    return out / "report.html"
