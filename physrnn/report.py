"""Study reports: a self-contained HTML page (figures embedded), Markdown, and JSON/CSV of every metric.

The tables' columns come from the metric and analysis registries, the figures from the figure registry
(:mod:`physrnn.figures`); a report is drawn from a :class:`~physrnn.results.StudyResult` alone.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from simulators.trajectory_file import temporary_path

from .analysis import ANALYSES
from .figures import colour_map, draw_figures, new_figure, png_bytes
from .metrics import METRICS
from .diagnostics import ENVELOPE_BLOCKS, ENVELOPE_START, GROWTH_FLOOR
from .results import StudyResult, invariant_growth

__all__ = ["write_atomic", "write_pages", "write_report", "write_sweep_report"]

def _pm(mean, std, fmt: str = ".3e", spread: str = ".1e") -> str:
    if mean is None or not np.isfinite(mean):
        return "–" if mean is None else "nan"
    return f"{mean:{fmt}} ± {std:{spread}}"


def _summary_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per model; a column per metric of the registry that the study computed (per component where
    the metric is), then divergences and fit time."""
    summary = result["summary"]
    first = summary[0]
    comps = first["components"]
    head, cells = ["model", "seeds"], []
    for metric in METRICS.values():
        key = metric.key
        if metric.aggregate == "max" and key in first:
            head.append(metric.label)
            cells.append(lambda s, key=key: [f"{s[key]:.2e}"])
        elif f"{key}_mean" in first and metric.per_component:
            head += [f"{metric.label} {c}" for c in comps]
            cells.append(lambda s, key=key: [_pm(m, d) for m, d in zip(s[f"{key}_mean"], s[f"{key}_std"])])
        elif f"{key}_mean" in first:
            fmt = (".1f", ".1f") if metric.better == "max" else (".2e", ".1e")
            suffix = f" / {first['horizon']:.1f}" if metric.name == "valid_time" else ""
            head.append(metric.label + (" / horizon" if suffix else ""))
            cells.append(lambda s, key=key, fmt=fmt, suffix=suffix: [_pm(s[f"{key}_mean"], s[f"{key}_std"], *fmt)
                                                                     + suffix])
    # The long runs' invariant error, bounded or secular (the Diagnostics section has the exponents' detail).
    growth = next((s["invariant_growth"] for s in summary if s.get("invariant_growth")), {})
    for name, first_growth in growth.items():
        head.append(f"{name} error over {first_growth['steps']} steps")
        cells.append(lambda s, name=name: [_growth_cell(s.get("invariant_growth", {}).get(name))])
    head += ["diverged", "fit s"]
    rows = []
    for s in summary:
        row = [s["label"], str(s["n_seeds"])]
        for cell in cells:
            row += cell(s)
        rows.append(row + [str(s["diverged"]), f"{s['fit_seconds_mean']:.2f}"])
    return head, rows


def _growth_cell(growth: dict[str, Any] | None) -> str:
    """"bounded (t^0.01)", "secular (t^0.98)" or "diverged": an invariant's error over a long run (worst seed)."""
    if growth is None:
        return "–"
    if growth["exponent"] is None:
        return growth["class"]
    return f"{growth['class']} ({_power(growth['exponent'])})"


def _power(exponent: float) -> str:
    return f"t^{round(exponent, 2) + 0.0:.2f}"  # + 0.0: no "t^-0.00"


def _group_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Per group of test trajectories: RMSE of the first component and the first physical figure."""
    summary = result["summary"]
    labels = list(summary[0].get("groups", {}))
    if not labels:
        return None
    comp = summary[0]["components"][0]
    kind = summary[0].get("physics_kind")
    key, name = next(iter(ANALYSES[kind].headlines.items())) if kind else (None, None)
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
    head = ["model"] + [ANALYSES[kind].title(k) for k in keys]
    rows = [[s["label"]] + [_pm(*s["physics"][k], ".2e", ".1e") for k in keys] for s in summary]
    exact = result.get("physics_exact") or {}
    rows.append(["exact solution (estimator floor)"] + [f"{exact[k]:.2e}" if k in exact else "–" for k in keys])
    return head, rows


def _markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
            + "</table>")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary name beside ``path`` and rename it: never a half-written file."""
    tmp = temporary_path(path)  # two processes writing one path never share a tmp
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_report(study_result: StudyResult, out_dir: str | Path, *, study_file: str = "",
                 root: str | Path | None = None) -> Path:
    """Write report.html, report.md, metrics.json, metrics.csv, config.json, study.log and figures/ from the
    study's result alone; returns the path of report.html.

    Each file is written to a temporary name and renamed, so an interrupted run leaves the last complete
    report in place. ``study_file`` and ``root`` go into the report's "Reproduce" line.
    """
    if not isinstance(study_result, StudyResult):
        raise TypeError(f"write_report takes a StudyResult (from run_study or StudyResult.from_json), got "
                        f"{type(study_result).__name__}")
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = draw_figures(study_result)
    result = study_result.to_dict()
    for name, png in figures.items():
        write_atomic(out / "figures" / f"{name}.png", png)
    runs = [{k: v for k, v in r.items() if k not in ("history", "physics_trajectories", "trajectories")}
            for r in result["rows"]]
    metrics = {"summary": result["summary"], "physics_exact": result.get("physics_exact"),
               "groups": result.get("groups", {}), "runs": runs}
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str))
    write_atomic(out / "metrics.csv", tidy_metrics(result["rows"]))
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
                       ANALYSES[kind].note.format(steady=result["config"]["rollout"].get("steady_fraction", 1 / 3))))
    tables += _diagnostic_tables(result)
    identified = _identified_table(result)
    if identified:
        tables.append(identified)
    if result.get("targets"):
        tables.append(("Targets", (["model", "metric", "worst seed", "bound", "met", "missed by"],
                                   [[t["label"], t["metric"], f"{t['worst']:.3e}",
                                     f"{'≤' if t.get('better', 'min') == 'min' else '≥'} {t['bound']:.1e}",
                                     "yes" if t["met"] else "NO", _missed_by(t)] for t in result["targets"]]),
                       "Each target set in the study config, checked on the model's worst seed (and worst "
                       "component); a diverged seed fails. Missed by: the factor between the worst seed and the "
                       "bound."))
    reproduce = f"physrnn study {study_file or 'studies/NAME.toml'} --root {root if root is not None else 'data'}"
    notes = ("Scores are over the closed-loop steps of the test trajectories (after the true context), mean ± std "
             "over seeds. NRMSE = RMSE / standard deviation in time of the true signal. Valid time = time until "
             f"the error first exceeds {result['config']['rollout']['valid_fraction']:g} of the true signal's range "
             "(median over test trajectories); in periods of the drive (2π/Ω), or of the free motion (2π/ω_d, "
             "2π/ω0 when not under-damped). Energy error = max over time of |E − E_exact| / max E_exact, "
             "E = v²/2 + ω0²x²/2. Physics baselines (persistence, Euler, RK4) start from the true full state at "
             "the end of the context and have no seed.")
    if any("valid_lyapunov_times_median" in r for r in result["rows"]):
        notes += (" Valid Lyapunov times = λ1 × valid time, with λ1 the largest Lyapunov exponent of each true "
                  "orbit (from the reference, Benettin's method): how many e-fold growths of an error the model "
                  "follows the chaotic orbit for.")
    tables[0] = (tables[0][0], tables[0][1], notes)
    facts = [("Reproduce", f"`{reproduce}`"), ("Training data", f"`{result['train_file']}`"),
             ("Test data", f"`{result['test_file']}`"),
             *_truth_facts(result.get("truth", {})),
             ("Resolved config", "`config.json`; log: `study.log`; every metric: `metrics.json`, and "
                                 "`metrics.csv` (one row per model, seed, group, metric and component); these "
                                 "tables: `tables.csv`")]
    return write_pages(out, f"Study: {result['study']}", result["description"], tables, figures, facts, result,
                       csv_name="tables.csv")


#: The columns of metrics.csv: one row per model, seed, group of test trajectories ("" for all), metric and
#: state component ("" for a figure of the whole state); ``value`` is a number (NaN where a rollout diverged).
TIDY_COLUMNS = ("model", "kind", "seed", "group", "metric", "component", "value")


def tidy_metrics(rows: list[dict[str, Any]]) -> str:
    """Every run's summary figures as a tidy CSV (:data:`TIDY_COLUMNS`), which ``pandas.read_csv`` reads as is."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TIDY_COLUMNS)
    keys = [m.key for m in METRICS.values()]

    def emit(run: dict[str, Any], group: str, figures: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
        named = [(k, figures[k]) for k in (*keys, *extra) if k in figures]
        named += [(k, v) for k, v in figures.get("physics", {}).items() if k != "kind"]
        for metric, value in named:
            values = value if isinstance(value, list) else [value]
            components = run["components"] if isinstance(value, list) else [""]
            for component, v in zip(components, values):
                writer.writerow([run["label"], run["kind"], "" if run["seed"] is None else run["seed"], group,
                                 metric, component, repr(float(v))])

    for run in rows:
        emit(run, "", run, extra=("diverged", "fit_seconds"))
        for group, figures in run.get("groups", {}).items():
            emit(run, group, figures)
    return buf.getvalue()


def _identified_table(result: dict[str, Any]) -> Table | None:
    """The equations each field-identifying model (SINDy) found, beside the true field in the same library."""
    rows = [r for r in result["rows"] if r.get("identified")]
    if not rows:
        return None
    table = []
    for r in rows:
        i = r["identified"]
        seed = "" if r["seed"] is None else f" seed {r['seed']}"
        table.append([f"{r['label']}{seed}", _fmt(i["error"]), str(i["spurious"]), str(i["missed"]),
                      "yes" if i["holds"] else f"no (residual {i['residual']:.1e})", "; ".join(i["equations"]),
                      "; ".join(i["truth"])])
    return ("Identified equations", (["model", "coefficient error", "spurious terms", "missed terms",
                                      "library holds the truth", "identified", "true (same library)"], table),
            "Each model that identifies the vector field, against the true field projected onto the same library "
            "(least squares on the test trajectories' states; exact where the library holds it). Coefficient "
            "error = ‖Ξ − Ξ_true‖ / ‖Ξ_true‖; spurious: terms found where the truth has none.")


def _diagnosed(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each model's diagnostics summaries (one per seed), in table order; models without them left out."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in result["rows"]:
        if r.get("diagnostics") and "skipped" not in r["diagnostics"]:
            out.setdefault(r["label"], []).append(r["diagnostics"])
    return out


def _worst(values: list[Any]) -> float:
    """The largest of the seeds' figures (NaN or None, a figure that could not be read, counts as worst)."""
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    return float(np.nan if np.isnan(a).any() else a.max())


def _diagnostic_tables(result: dict[str, Any]) -> list[tuple[str, tuple[list[str], list[list[str]]], str]]:
    """The Diagnostics section: the step Jacobian, the linearisation at the equilibria, the increments, the long
    runs and the error growth; each row a model at its worst seed (see :mod:`physrnn.diagnostics`)."""
    models = _diagnosed(result)
    if not models:
        skipped = {r["label"]: r["diagnostics"]["skipped"] for r in result["rows"]
                   if "skipped" in r.get("diagnostics", {})}
        return [("Diagnostics", (["model", "not read because"], [[k, v] for k, v in skipped.items()]),
                 "The step-map diagnostics compare maps of the full state with the exact flow map's.")] \
            if skipped else []
    settings = result["config"].get("diagnostics", {})
    tables = []
    first = next(iter(models.values()))[0]
    params = [k[: -len("_rel_error_median")] for k in first if k.endswith("_rel_error_median")]
    header = ["model", "eigenvalue error (median)", "eigenvalue error (worst point)", "|ρ̂ − ρ| (median)",
              "anti-damped points", *(f"{p} rel. error" for p in params)]
    table = []
    for label, mine in models.items():
        table.append([label, _fmt(_worst([d["eigenvalue_error_median"] for d in mine])),
                      _fmt(_worst([d["eigenvalue_error_max"] for d in mine])),
                      _fmt(_worst([d["spectral_radius_error_median"] for d in mine])),
                      f"{sum(d['anti_damped_points'] for d in mine)} of {sum(d['points'] for d in mine)}",
                      *(_fmt(_worst([d[f"{p}_rel_error_median"] for d in mine])) for p in params)])
    if params:
        table.append(["exact flow map (floor)", "0", "0", "0", "–",
                      *(_fmt(first[f"{p}_rel_error_floor"]) for p in params)])
    tables.append(("Diagnostics: the learned step map's Jacobian", (header, table),
                   f"J = ∂s_{{n+1}}/∂s_n of each model at {settings.get('points', 8)} points along every test "
                   "trajectory (a windowed model read on the true trajectories, its history moved with the backward "
                   "flow; the ESN's reservoir held where the true history left it), against the exact flow map's "
                   "from the variational equations. Eigenvalue error: max |λ̂ − λ| over the spectrum, median over "
                   "points (worst seed) and worst point. Anti-damped: points where ρ(Ĵ) > 1 + 1e-6 while "
                   "ρ(J) ≤ 1 + 1e-6 (the model grows what the physics damps or conserves). Parameters read from "
                   "the map itself (relative error, worst seed); the floor row is the same estimator on the exact "
                   "flow map."))

    rows = []
    for label, mine in models.items():
        for eq in mine[0].get("equilibria", {}):
            each = [d["equilibria"][eq] for d in mine]
            rows.append([label, eq, _fmt(_worst([e["rate_rel_error_median"] for e in each])),
                         _fmt(each[0]["frequency_median"]), _fmt(each[0]["frequency_exact_median"]),
                         _fmt(each[0]["growth_rate_median"]), _fmt(each[0]["growth_rate_exact_median"])])
    if rows:
        tables.append(("Diagnostics: the map linearised at the equilibria",
                       (["model", "equilibrium", "rate error (worst seed)", "frequency", "exact frequency",
                         "growth rate", "exact growth rate"], rows),
                       "Each model held at an equilibrium of the free system for its whole history and linearised "
                       "there; r = ln λ/Δt for each eigenvalue, paired with the exact flow map's. Rate error: "
                       "max |r̂ − r| / max |r| (median over the test parameter sets, worst seed). Frequency: the "
                       "largest |Im r| (the small-oscillation frequency at a centre); growth rate: the largest "
                       "Re r (at ±v_max of the eigen flow the rates are the eigenvalue gaps ‖x‖²(λ_i − λmax)). "
                       "Frequencies and rates: first seed, median over parameter sets, in 1/[T]. Where no training "
                       "trajectory rests at the equilibrium, a model with memory (the ESN's reservoir, held there "
                       "for 100 steps) is read outside what it was trained on."))

    rows = [[label, _fmt(_worst([d["increments"]["error_median"] for d in mine])),
             _fmt(_worst([d["increments"]["error_max"] for d in mine])),
             _fmt(_worst([d["increments"]["field_gap_median"] for d in mine])),
             _fmt(mine[0]["increments"]["floor_median"])]
            for label, mine in models.items() if "increments" in mine[0]]
    if rows:
        tables.append(("Diagnostics: what the network approximates",
                       (["model", "‖g − exact increment‖ (median)", "(worst point)", "‖g − f‖ (median)",
                         "‖exact increment − f‖ (O(Δt))"], rows),
                       f"The learned increment g(s) = (Φ̂(s) − s)/Δt at {settings.get('increment_points', 16)} states "
                       "along every test trajectory (its true history behind it), against the exact increment "
                       "(Φ_Δt(s) − s)/Δt and the vector field f(s); each relative to the RMS exact increment, worst "
                       "seed. A model trained on exact data should match the exact increment; its distance to f "
                       "is then the O(Δt) of the last column, not an error. Map: the increments figure."))

    rows = []
    for label, mine in models.items():
        if "long_horizon" not in mine[0]:
            continue
        longs = [d["long_horizon"] for d in mine]
        drifts = [k[: -len("_drift_median")] for k in longs[0] if k.endswith("_drift_median")]
        starts = sum(h["starts"] for h in longs)
        times = [h["divergence_time_median"] for h in longs if h["divergence_time_median"] is not None]
        rows.append([label, f"{sum(h['diverged'] for h in longs)} of {starts}",
                     _fmt(float(np.min(times))) if times else "–",
                     "; ".join(f"{n} {_fmt(_worst([h[f'{n}_drift_median'] for h in longs]))} "
                               f"(exact {_fmt(longs[0][f'{n}_drift_exact'])})" for n in drifts) or "–",
                     "; ".join(f"{n} {_growth_cell(g)} (exact {_power(longs[0][f'{n}_growth_exponent_exact'])})"
                               for n, g in invariant_growth([{"diagnostics": d} for d in mine]).items()) or "–",
                     _fmt(_worst([h["late_amplitude_error_median"] for h in longs])),
                     f"{sum(h['behaviour_right'] for h in longs)} of {starts}",
                     ", ".join(dict.fromkeys(longs[0]["behaviour_exact"]))])
    if rows:
        steps = next(iter(models.values()))[0]["long_horizon"]["steps"]
        tables.append((f"Diagnostics: long horizons ({steps} steps)",
                       (["model", "diverged", "first divergence at t", "invariant drift (median, worst seed)",
                         "invariant error growth (worst seed)", "late amplitude error", "long-time behaviour right",
                         "exact behaviour"], rows),
                       f"Closed loops of {steps} steps from {settings.get('long_starts', 3)} test starts (every "
                       "seed), against the truth over the same time. Drift: max over time of |I(t) − I(0)|/|I(0)| "
                       "of each invariant the system conserves. Growth: the envelope of that error (its max over "
                       f"{ENVELOPE_BLOCKS} blocks spaced evenly in log t from {ENVELOPE_START:.0%} of the run) fitted "
                       f"as t^α; bounded where α ≤ {GROWTH_FLOOR:g}, "
                       "the estimator's floor (bounded oscillating errors read |α| < 0.05, a random walk 0.5, a "
                       "steady drift 1), else secular; worst start and seed, beside the same estimator on the "
                       "truth. Late amplitude error: each component's max |s| over "
                       "the last 10 % of the run against the truth's, relative to the truth's largest |s|. "
                       "Behaviour: a fixed point (late spread below 1e-3 of that scale), bounded motion (an orbit, "
                       "cycle or attractor) or diverged."))

    rows = [[label, _fmt(_worst([d["growth"]["exponent_median"] for d in mine])),
             _fmt(mine[0]["growth"]["lyapunov_exponent_median"])]
            for label, mine in models.items() if "growth" in mine[0]]
    if rows:
        tables.append(("Diagnostics: error growth",
                       (["model", "fitted growth exponent (median, worst seed)", "exact largest Lyapunov exponent"],
                        rows),
                       "Slope of ln ‖e(t)‖ against t over each test rollout until the error first reaches the "
                       "valid-time level, median over test trajectories, in 1/[T]; beside the exact system's "
                       "largest Lyapunov exponent from the same starts (Benettin's method on the reference: "
                       "max Re λ(M) for a linear system, 0 on a regular orbit, positive on a chaotic one). An "
                       "exponent well above the exact one is error the model itself feeds."))
    return tables


def _missed_by(target: dict[str, Any]) -> str:
    """How far a missed target is off: worst/bound (or bound/worst for a figure where larger is better)."""
    worst, bound = target["worst"], target["bound"]
    if target["met"]:
        return "–"
    if not np.isfinite(worst):
        return "diverged (NaN)"
    ratio = worst / bound if target.get("better", "min") == "min" else bound / worst if worst > 0 else np.inf
    return f"{ratio:.3g}×"


def _truth_facts(truth: dict[str, Any]) -> list[tuple[str, str]]:
    """One line per data part: how its states were computed, and a reference's certificate; the largest
    Lyapunov exponent of the test orbits where valid times are counted in Lyapunov times."""
    facts = []
    for part in ("train", "test"):
        t = truth.get(part)
        if not t:
            continue
        if t["truth"] == "reference":
            c = t.get("certificate", {})
            line = f"reference ({t.get('integrator', 'scipy')}, rtol {t.get('rtol', float('nan')):.0e})"
            if c:
                horizon = "the whole horizon" if c["certified"] else f"t = {c['certified_until']:.4g} only"
                line += (f"; against a solve {c['compared_rtol'] / t.get('rtol', 1):.0f}× looser, max difference "
                         f"{c['max_difference']:.1e} (bound {c['bound']:.0e}): certified over {horizon}")
                if not c["certified"]:
                    line += " (a chaotic orbit: the truth is known to the bound only that long)"
        else:
            line = {"exact": "exact (closed form)"}.get(t["truth"], f"numerical ({t['method']}): not a truth")
        facts.append((f"Truth ({part})", line))
    exponents = np.asarray(truth.get("test", {}).get("lyapunov_exponent", []), float)
    if exponents.size:
        lam = float(np.median(exponents))
        err = float(np.median(truth["test"]["lyapunov_stderr"]))
        facts.append(("Largest Lyapunov exponent (test orbits, reference)",
                      f"λ1 = {lam:.3g} ± {err:.1g} (median over {exponents.size} orbits, each ± its standard "
                      f"error); Lyapunov time 1/λ1 = {1 / lam:.3g}" if lam > 0 else f"λ1 = {lam:.3g}: not chaotic"))
    return facts


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
        return f"{value:.3e}" if np.isfinite(value) else str(value)  # nan, inf (a drift off the domain)
    return str(value)


def _axis_figure(result: dict[str, Any]) -> bytes | None:
    """The objective against each axis: every trial a dot, the mean over seeds a line, baselines dashed."""
    trials = [t for t in result["trials"] if t["status"] == "ok"]
    axes_names = list(dict.fromkeys(k for t in result["trials"] for k in t["values"] if k != "seed"))
    if not trials or not axes_names:
        return None
    minimise = result["direction"] == "min"
    ys = np.array([t["objective"] for t in trials], float)
    log_y = minimise and np.all(ys[np.isfinite(ys)] > 0)
    ncols = min(3, len(axes_names))
    nrows = -(-len(axes_names) // ncols)
    fig, grid = new_figure(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    dts = {b["dt"] for b in result["baselines"]}
    colours = colour_map([b["label"] for b in result["baselines"]])
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
    return png_bytes(fig)


def _by_dt(result: dict[str, Any]) -> tuple[list[float], dict[str, list[float]], dict[str, list[float]]]:
    """For a sweep over Δt: the time steps, each baseline's objective at each, and each model type's best point
    (by its mean over seeds) at each: its mean. Empty when Δt is not an axis."""
    from .sweep import rank

    dts = sorted({t["values"]["dt"] for t in result["trials"] if "dt" in t["values"]})
    if len(dts) < 2:
        return [], {}, {}
    sign = 1.0 if result["direction"] == "min" else -1.0
    lines: dict[str, list[float]] = {}
    for b in result["baselines"]:
        lines.setdefault(b["label"], [float("nan")] * len(dts))
        if b["dt"] in dts:
            lines[b["label"]][dts.index(b["dt"])] = b["objective"]
    models: dict[str, list[float]] = {}
    for p in rank(result["trials"], result["direction"]):  # each point's mean over its seeds
        row = models.setdefault(p["values"].get("kind", result["config"]["sweep"].get("model", "model")),
                                [float("nan")] * len(dts))
        i = dts.index(p["values"]["dt"])
        if np.isfinite(p["mean"]) and (not np.isfinite(row[i]) or sign * p["mean"] < sign * row[i]):
            row[i] = p["mean"]
    return dts, lines, models


def _slope(dts: list[float], values: list[float]) -> float:
    """The least-squares slope of log(value) against log(Δt) over the finite, positive values."""
    x, y = np.log(np.asarray(dts, float)), np.asarray(values, float)
    ok = np.isfinite(y) & (y > 0)
    return float(np.polyfit(x[ok], np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")


def _dt_figure(result: dict[str, Any]) -> bytes | None:
    """The objective against Δt, log–log: every baseline and every model type's best point at each Δt."""
    dts, lines, models = _by_dt(result)
    if not dts:
        return None
    from matplotlib.ticker import NullFormatter

    fig, ax = new_figure(figsize=(6.4, 4.6))
    colours = colour_map([*lines, *models])
    for label, values in {**lines, **models}.items():
        if label == "persistence":
            continue
        y = np.asarray(values, float)
        y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
        learned = label in models
        ax.plot(dts, y, "o-" if learned else "s--", color=colours[label], lw=2 if learned else 1,
                label=f"{label} (slope {_slope(dts, values):.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(dts, [f"{dt:g}" for dt in dts])  # the swept steps, not crowded minor decades
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Δt")
    ax.set_ylabel(result["objective"])
    ax.legend(fontsize=7)
    return png_bytes(fig)


def _seed_figure(result: dict[str, Any], top: int = 20) -> bytes | None:
    """The best points and the objective of each of their seeds: how far a ranking holds over seeds."""
    ranking = result["ranking"][:top]
    if not ranking:
        return None
    fig, ax = new_figure(figsize=(8, 0.35 * len(ranking) + 1.2))
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
    return png_bytes(fig)


def write_sweep_report(result: dict[str, Any], out_dir: str | Path, *, sweep_file: str = "") -> Path:
    """Write a sweep's report.html, report.md, trials.csv, ranking.csv and figures/ into ``out_dir``."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = {name: png for name, png in (("objective_by_axis", _axis_figure(result)),
                                           ("objective_against_dt", _dt_figure(result)),
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
    dts, lines, models = _by_dt(result)
    if dts:
        rows = [[label, *(_fmt(v) for v in values), f"{_slope(dts, values):.2f}"]
                for label, values in {**lines, **models}.items()]
        tables.append((f"{result['objective']} against Δt", (["model", *(f"Δt = {d:g}" for d in dts), "slope"], rows),
                       "Baselines, then each model type's best point at each Δt (mean over seeds). Slope: the "
                       f"least-squares slope of log {result['objective']} against log Δt (Euler's global error "
                       "is first order, RK4's fourth)."))
    target = result.get("target")
    if target:
        verdict = "yes" if target["met"] else "NO"
        missed = "–" if target["met"] else (f"{target['factor'] / target['ratio']:.3g}×"
                                              if np.isfinite(target["ratio"]) and target["ratio"] > 0 else "no finite point")
        tables.append(("Target", (["Δt", "best point (worst seed)", result["objective"], target["baseline"],
                                   "ratio", "required", "met", "missed by"],
                                  [[f"{target['dt']:g}", str(target["best_point"] or "–"), _fmt(target["worst_seed"]),
                                    _fmt(target["baseline_objective"]), f"{target['ratio']:.3g}",
                                    f"≥ {target['factor']:g}", verdict, missed]]),
                       f"The best point at Δt = {target['dt']:g}, judged by its worst seed, must beat "
                       f"{target['baseline']} at the same Δt by a factor {target['factor']:g}."))
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
