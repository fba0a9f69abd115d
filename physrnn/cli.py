"""The ``physrnn`` command.

Every sub-command turns bad input into one line on stderr and exit status 2 (no traceback; set
``PHYSRNN_DEBUG=1`` to see one), and an interrupted run into exit status 130; neither leaves a half-written
output file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
import threading
import tomllib
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from simulators.ensemble import EnsembleConfig, simulate_to_file
from simulators.integrate import METHODS
from simulators.params import SPEC_KINDS as _SPEC_KINDS
from simulators.system import get_system, system_names
from simulators.trajectory_file import TrajectoryFileError, check_output_path, read_trajectories

from .models.configs import describe_settings, model_kind, model_kinds
from .sweep import DEFAULT_START, STARTS


def _ensemble_default(name: str) -> Any:
    """The default of an ensemble setting, from :class:`EnsembleConfig` itself (so --help cannot drift)."""
    return next(f.default for f in fields(EnsembleConfig) if f.name == name)


def _system_parameters() -> str:
    """One line per registered system: its ensemble parameters (with the defaults of the non-spec ones)."""
    width = max(len(n) for n in system_names()) + 12
    lines = []
    for name in system_names():
        params = get_system(name).Params
        specs = set(params.spec_names())
        words = [f.name if f.name in specs else f"{f.name}(={f.default})" for f in fields(params)]
        lines.append(f"{name + ' parameters:':<{width}} {' '.join(words)}")
    return "\n".join(lines)


def _simulate_epilog() -> str:
    terms = sorted({t for n in system_names() for t in get_system(n).Params.TERMS})
    return f"""\
parameter specs (--param NAME=SPEC, repeatable; same meaning as in a config file's [params] table):
  NAME=0.2                     the same value for every trajectory
  NAME=uniform:LO,HI           uniform in [LO, HI)      (also loguniform:LO,HI)
  NAME=choice:A,B,C            drawn from the list
  NAME=values:A,B,...          one value per trajectory, exactly
  NAME=linspace:LO,HI          evenly spaced over the trajectories
  NAME=SPEC;SPEC               one spec per term, for {', '.join(terms) or 'parameters given per term'}
{_system_parameters()}

examples:
  physrnn simulate --config studies/data/driven.toml --output data/driven.h5
  physrnn simulate --system oscillator --n-traj 100 --dt 0.05 --t-end 40 --seed 1 \\
      --param damping=0.2 --param drive_amplitude=0.5 --param drive_frequency=1.3 --output data/x.h5
  physrnn simulate --config studies/data/driven.toml --shards 4 --workers 2 --output data/driven.h5
"""


def _train_epilog() -> str:
    """Every model kind's settings, with their defaults and meanings, from the config classes."""
    lines = ["model settings (--set NAME=VALUE, repeatable; default in brackets):"]
    seen: dict[type, str] = {}
    for kind in model_kinds():
        entry = model_kind(kind)
        lines.append(f"  {kind}: {entry.summary}")
        if entry.config_class in seen:
            lines.append(f"      the settings of {seen[entry.config_class]}")
            continue
        seen[entry.config_class] = kind
        settings = describe_settings(kind)
        if not settings:
            lines.append("      none")
        for name, default, meaning in settings:
            lines.append(f"      {name} [{default}]  {meaning}")
    lines += ["", "example:", "  physrnn train --data data/driven.h5 --model gru --set units=32 --set window=2 "
              "--output data/gru.keras"]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: what is wrong and where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _scalar(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def _parse_spec(text: str) -> Any:
    kind, sep, rest = text.partition(":")
    if sep and kind in _SPEC_KINDS:
        return {kind: [_scalar(v) for v in rest.split(",")]}
    return _scalar(text)


def parse_param(text: str) -> tuple[str, Any]:
    """``NAME=SPEC`` from the command line, as a config file would give it."""
    name, sep, spec = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param {text!r} is not NAME=SPEC (for example damping=0.2 or x0=uniform:-1,1)")
    terms = [_parse_spec(s) for s in spec.split(";")]
    return name.strip(), terms[0] if len(terms) == 1 else terms


def _load_toml(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file '{path}' does not exist")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file '{path}' is not valid TOML: {err}") from None


def _simulate_config(args: argparse.Namespace) -> EnsembleConfig:
    if args.n_steps is not None and args.t_end is not None:
        raise ValueError("give --n-steps or --t-end, not both")
    raw: dict[str, Any] = _load_toml(args.config) if args.config else {}
    raw = dict(raw)
    for key in ("system", "n_traj", "dt", "n_steps", "t_end", "seed", "method", "rtol", "atol"):
        value = getattr(args, key)
        if value is not None:
            raw[key] = value
    if args.n_steps is not None:
        raw.pop("t_end", None)
    if args.t_end is not None:
        raw.pop("n_steps", None)
        raw["t_end"] = "auto" if args.t_end == "auto" else float(args.t_end)
    if args.param:
        params = dict(raw.get("params", {}))
        params.update(parse_param(p) for p in args.param)
        raw["params"] = params
    return EnsembleConfig.from_dict(raw)


def cmd_simulate(args: argparse.Namespace) -> int:
    config = _simulate_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if args.output is None:
        raise ValueError("no output file; give --output PATH (for example --output data/ensemble.h5)")
    if args.shards is None and (args.scheduler or args.workers):
        raise ValueError("--scheduler and --workers spread the work of --shards N; give --shards too")
    replaced = Path(args.output).is_file()
    if args.shards is None:
        with _progress(config.n_traj, f"simulate {config.system}", args.quiet) as update:
            path = simulate_to_file(config, args.output, progress=update)
    else:
        from simulators.ensemble import shard_blocks

        from .cluster import connect, simulate_sharded

        check_output_path(args.output)
        shard_blocks(config, args.shards)  # a bad count fails before a cluster starts
        with connect(args.scheduler, args.workers, log=(lambda m: None) if args.quiet else _stderr) as client:
            with _progress(config.n_traj, f"simulate {config.system} ({args.shards} shards)", args.quiet) as update:
                path = simulate_sharded(config, args.output, args.shards, client, progress=update)
    if not args.quiet:
        print(f"wrote {path}" + (f" (one ensemble over {args.shards} shard files)" if args.shards else "")
              + (", replacing the file that was there" if replaced else ""))
    return 0


@contextmanager
def _progress(total: int, desc: str, quiet: bool) -> Iterator[Callable[[int], Any] | None]:
    """A progress bar on stderr (none if ``quiet``); yields its update function."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="traj", desc=desc, mininterval=0.5, file=sys.stderr) as bar:
        yield bar.update


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(path: str) -> str:
    """A human-readable summary of a trajectory file (what ``physrnn inspect`` prints)."""
    tr = read_trajectories(path)
    lines = [
        f"{path}: {tr.system} ensemble, method {tr.method}, seed {tr.attrs.get('seed')}",
        f"  trajectories {tr.n_traj}, steps {tr.n_steps}, t in [{tr.time[0]:g}, {tr.time[-1]:g}], dt {tr.dt:g}",
        "  states   " + ", ".join(f"{n} [{u}]" for n, u in zip(tr.state_names, tr.state_units)),
    ]
    if tr.drive is not None:
        lines.append("  drive    " + ", ".join(tr.drive_names))
    for name, value in tr.params.items():
        shape = "x".join(map(str, value.shape[1:])) or "scalar"
        lines.append(f"  params/{name:<18} {shape:>8}  min {value.min():.6g}  max {value.max():.6g}")
    software = tr.attrs.get("software", {})
    lines.append(f"  created {tr.attrs.get('created')} by physrnn {software.get('physrnn')}, "
                 f"numpy {software.get('numpy')}, scipy {software.get('scipy')}, h5py {software.get('h5py')}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.json:  # one JSON document: a list with one object per file
        files = []
        for path in args.files:
            tr = read_trajectories(path)
            files.append({"path": path, "system": tr.system, "method": tr.method, "n_traj": tr.n_traj,
                          "n_steps": tr.n_steps, "dt": tr.dt, "state_names": tr.state_names,
                          "drive_names": tr.drive_names, "attrs": tr.attrs,
                          "params": {k: [float(np.min(v)), float(np.max(v))] for k, v in tr.params.items()}})
        print(json.dumps(files, indent=2, default=str))
        return 0
    for i, path in enumerate(args.files):
        if i:
            print()
        print(describe(path))
    return 0


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in pairs or []:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {text!r} is not NAME=VALUE (for example units=32)")
        value = value.strip()
        if value.startswith("["):  # a list setting (angles, ridges): [theta] or ["theta"], [1e-8, 1e-6]
            value = [_scalar(v.strip().strip("\"'")) for v in value.strip("[]").split(",") if v.strip()]
            out[name.strip()] = value
        else:
            out[name.strip()] = _scalar(value)
    return out


def _fractions(text: str) -> tuple[float, ...]:
    try:
        fractions = tuple(float(v) for v in text.split(","))
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
            raise ValueError
    except ValueError:
        raise ValueError(f"--split {text!r} is not three non-negative fractions summing to 1, e.g. 0.7,0.15,0.15") \
            from None
    return fractions


def _hold_out(text: str, params: dict) -> tuple[str, list[tuple[float, float]]]:
    """``NAME=LO:HI[,LO:HI...]`` → the parameter name and its held-out intervals."""
    name, sep, spans = text.partition("=")
    try:
        intervals = [tuple(float(v) for v in span.split(":")) for span in spans.split(",")]
        if not sep or any(len(i) != 2 or i[0] > i[1] for i in intervals):
            raise ValueError
    except ValueError:
        raise ValueError(f"--hold-out {text!r} is not NAME=LO:HI[,LO:HI...] (for example drive_frequency=0.9:1.1)")
    if name not in params:
        raise ValueError(f"--hold-out names '{name}', which the data file has no parameter of; "
                         f"choose from {', '.join(params)}")
    return name, intervals  # type: ignore[return-value]


def cmd_train(args: argparse.Namespace) -> int:
    from .data import FeatureSpec, build_step_data, split_by_parameter, split_by_trajectory
    from .models import build_model, check_model_path

    # Every setting and output path is checked before the data is read and the model trained.
    model = build_model(args.model, **_settings(args.set))
    if args.output is None:
        raise ValueError("no output file; give --output PATH ending in .keras")
    check_model_path(args.output)
    if args.checkpoint_dir is not None:
        _check_checkpoint_dir(args.checkpoint_dir)
    fractions = _fractions(args.split)
    tr = read_trajectories(args.data)
    params = tuple(p for p in (args.parameters or "").split(",") if p)
    spec = FeatureSpec(system=tr.system, observation=args.observation, drive=args.drive, parameters=params)
    data = build_step_data(tr, spec)
    if args.hold_out:
        # Generalisation: the test set is every trajectory whose parameter lies in a held-out interval.
        name, intervals = _hold_out(args.hold_out, tr.params)
        rest, test_idx = split_by_parameter(tr.params[name], intervals)
        if len(test_idx) == 0 or len(rest) < 2:
            raise ValueError(f"--hold-out {args.hold_out} leaves {len(rest)} trajectories to train on and "
                             f"{len(test_idx)} to test; widen or narrow the interval")
        part = split_by_trajectory(len(rest), (fractions[0] / (fractions[0] + fractions[1]),
                                               fractions[1] / (fractions[0] + fractions[1])), seed=args.split_seed)
        train_idx, val_idx = rest[part[0]], rest[part[1]]
    else:
        train_idx, val_idx, test_idx = split_by_trajectory(tr.n_traj, fractions,
                                                           seed=args.split_seed)
    model.fit(data.take(train_idx), data.take(val_idx), verbose=0 if args.quiet else 2,
              checkpoint_dir=args.checkpoint_dir)
    model.provenance_ = {"data_file": str(Path(args.data).resolve()), "split_seed": args.split_seed,
                         "split": {"train": train_idx.tolist(), "validation": val_idx.tolist(),
                                   "test": test_idx.tolist()}}
    path = model.save(args.output)
    if not args.quiet:
        losses = {k: f"{v[-1]:.3g}" for k, v in model.history_.items() if k != "learning_rate"}
        print(f"trained {args.model} on {len(train_idx)} trajectories in {model.fit_seconds_:.1f} s {losses}; "
              f"wrote {path}")
    return 0


def _check_checkpoint_dir(text: str) -> None:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--checkpoint-dir '{path}' is a file; give a directory (it is created if missing)")
    parent = path if path.is_dir() else path.parent
    if not parent.is_dir():
        raise ValueError(f"--checkpoint-dir '{path}': directory '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--checkpoint-dir '{path}': directory '{parent}' is not writable")


def cmd_rollout(args: argparse.Namespace) -> int:
    from .evaluation import rollout_to_file
    from .models import load_model

    check_output_path(args.output)
    model = load_model(args.model)
    tr = read_trajectories(args.data)
    provenance = getattr(model, "provenance_", {}) or {}
    same_file = provenance.get("data_file") == str(Path(args.data).resolve())
    select = args.select or ("test" if same_file else "all")
    if select != "all":
        if not same_file:
            raise ValueError(f"--select {select} names the model's own split, but '{args.data}' is not the file it "
                             "was trained on; use --select all")
        index = np.asarray(provenance["split"][select], dtype=int)
    else:
        index = np.arange(tr.n_traj)
    result, path = rollout_to_file(model, tr, args.data, index, args.output, model_file=args.model,
                                   context=args.context, n_steps=args.n_steps, selection=select)
    if not args.quiet:
        print(f"rolled out {len(index)} trajectories x {len(result.time)} steps ({select}) in {result.seconds:.2f} s, "
              f"{int(result.diverged.sum())} diverged; wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_rollout

    rows = [{"file": p, **evaluate_rollout(p, args.valid_fraction).to_dict()} for p in args.files]
    for row in rows:
        row.pop("trajectories")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    names = rows[0]["components"]
    width = max(len("file"), *(len(r["file"]) for r in rows)) + 2
    head = "".join(f"{'RMSE ' + n:>12}" for n in names) + "".join(f"{'NRMSE ' + n:>12}" for n in names)
    print(f"{'file':<{width}}{'model':<12}{'traj':>5}{'diverged':>9}{head}{'max err':>11}"
          f"{'valid time / horizon':>22}")
    for r in rows:
        cells = "".join(f"{v:>12.3e}" for v in r["rmse"]) + "".join(f"{v:>12.3e}" for v in r["nrmse"])
        print(f"{r['file']:<{width}}{r['model']:<12}{r['n_traj']:>5}{r['diverged']:>9}{cells}"
              f"{max(r['max_error']):>11.2e}{r['valid_time_median']:>13.1f} / {r['horizon']:<6.1f}")
    print(f"(over the closed-loop steps; NRMSE = RMSE / std in time of the true signal; valid time = median time "
          f"until the error first exceeds {rows[0]['valid_fraction']:g} of the signal's range, out of the horizon)")
    return 0


def _report_dir(root: str, name: str) -> Path:
    return Path(root) / "reports" / name


def cmd_study(args: argparse.Namespace) -> int:
    from .report import write_report
    from .runner import run_study
    from .study import load_study

    study = load_study(args.config)  # the whole config is checked before any work
    out = _report_dir(args.root, study.name)
    _check_report_dir(out, args.config, study.name)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_study(study, root=args.root, log=log, fit_verbose=0 if args.quiet else 2)  # 2: a line per epoch
    out.mkdir(parents=True, exist_ok=True)
    result.to_json(out / "results.json")
    page = write_report(result, out, study_file=args.config, root=args.root)
    for t in result.targets:
        print(f"target {t.label}.{t.metric} {'<=' if t.better == 'min' else '>='} {t.bound:g}: worst seed "
              f"{t.worst:.3g} {'met' if t.met else 'NOT MET'}")
    print(f"report: {page}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .cluster import connect, default_workers
    from .report import write_atomic, write_sweep_report
    from .sweep import load_sweep, run_sweep

    sweep = load_sweep(args.config)  # every trial is resolved and checked before any work
    if args.dry_run:
        for t in sweep.trials:
            print(f"{t.id}  {t.point}  seed={t.seed}")
        print(f"{len(sweep.trials)} trials, {len(sweep.baselines)} baseline runs")
        return 0
    log = (lambda msg: None) if args.quiet else _stderr
    threads = None
    if args.scheduler is None:  # a local cluster shares this machine's cores between its workers
        workers = args.workers or default_workers()
        threads = max(1, default_workers() // workers)
    with connect(args.scheduler, args.workers, log=log) as client:
        result = run_sweep(sweep, args.root, client=client, log=log, threads=threads, start=args.start)
    out = Path(result["root"]) / "sweeps" / sweep.name
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.json", json.dumps(result, indent=2, default=str))
    page = write_sweep_report(result, out, sweep_file=args.config)
    failed = sum(t["status"] != "ok" for t in result["trials"])
    best = result["ranking"][0]
    print(f"best of {len(result['ranking'])} points by {sweep.objective}: {best['point']}, "
          f"{best['mean']:.3g} ± {best['std']:.1g} over {len(best['seeds'])} seeds"
          + (f"; {failed} trials failed (see the report)" if failed else ""))
    print(f"report: {page}")
    return 0 if failed < len(result["trials"]) else 1


def _check_report_dir(out: Path, study_file: str, name: str) -> None:
    """Refuse, before any work, to overwrite the report of another study file that has the same [study] name."""
    stored = out / "results.json"
    try:
        previous = json.loads(stored.read_text()).get("study_file", "") if stored.is_file() else ""
    except (OSError, ValueError):
        return  # unreadable: nothing to protect; the new results replace it
    if previous and previous != str(Path(study_file).resolve()):
        raise ValueError(f"'{out}' holds the report of another study file, '{previous}', with the same [study] name "
                         f"'{name}'; rename one of the studies, or give this run its own --root")


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .results import StudyResult
    from .study import load_study

    source = Path(args.source)
    if source.is_dir() or source.suffix == ".json":  # a report folder, or its results.json: no study file needed
        stored = source / "results.json" if source.is_dir() else source
        out, study_file = stored.parent, ""
        root = out.parent.parent if out.parent.name == "reports" else None  # ROOT/reports/NAME
    else:
        study = load_study(args.source)
        out, study_file, root = _report_dir(args.root, study.name), args.source, args.root
        stored = out / "results.json"
    if not stored.is_file():
        if args.missing_ok:
            print(f"physrnn report: {args.source}: no stored results (never run); skipped", file=sys.stderr)
            return 0
        raise ValueError(f"no stored results at {stored}; run `physrnn study {args.source}` first")
    result = StudyResult.from_json(stored)  # the report is rebuilt from the stored results alone
    study_file = study_file or result.study_file
    print(f"report: {write_report(result, out, study_file=study_file, root=root)}")
    return 0


def _cluster_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://head-node:8786 (default: a local cluster)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local cluster (default: one per core)")


def _version() -> str:
    from simulators.trajectory_file import software_versions

    return software_versions()["physrnn"]


class _Subcommands:
    """``add_subparsers`` whose every command also takes the common options (``--verbose``)."""

    def __init__(self, action, common: argparse.ArgumentParser) -> None:
        self._action, self._common = action, common

    def add_parser(self, name: str, **kwargs):
        return self._action.add_parser(name, parents=[self._common], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="physrnn", description="Exact physics, learned time-step updates, honest comparisons.")
    parser.add_argument("--version", action="version", version=f"physrnn {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's own log (start-up notices, retracing warnings)")
    sub = _Subcommands(parser.add_subparsers(dest="command", required=True, parser_class=_Parser), common)

    sim = sub.add_parser(
        "simulate", help="generate an ensemble of exact (or integrated) trajectories into an HDF5 file",
        description="Sample parameters and initial states from a seed, solve every trajectory, and write a "
                    "trajectory file (schema physrnn.trajectories, see data/README.md). Flags override the "
                    "config file.",
        epilog=_simulate_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sim.add_argument("--config", metavar="FILE", help="TOML ensemble config (see studies/data/)")
    sim.add_argument("--system", choices=system_names())
    sim.add_argument("--n-traj", type=int, metavar="N", help="number of trajectories")
    sim.add_argument("--dt", type=float, help="output time step")
    sim.add_argument("--n-steps", type=int, metavar="N", help="number of output times, t = 0 included")
    sim.add_argument("--t-end", metavar="T", help="final time (a whole number of dt), or 'auto' where the system "
                                                  "defines it (the eigen flow)")
    sim.add_argument("--seed", type=int, help=f"root seed of every random draw (default {_ensemble_default('seed')})")
    sim.add_argument("--method", choices=METHODS, help="the closed form, or an integrator (default "
                                                       f"{_ensemble_default('method')})")
    sim.add_argument("--rtol", type=float, help="relative tolerance of the reference integrator (default "
                                                f"{_ensemble_default('rtol'):g})")
    sim.add_argument("--atol", type=float, help="absolute tolerance of the reference integrator (default "
                                                f"{_ensemble_default('atol'):g})")
    sim.add_argument("--param", action="append", metavar="NAME=SPEC", help="a parameter spec (repeatable)")
    sim.add_argument("--output", "-o", metavar="PATH", help="the HDF5 file to write")
    sim.add_argument("--shards", type=int, metavar="N",
                     help="write N shard files in parallel on a Dask cluster, and --output as one virtual ensemble "
                          "over them (the same data as without --shards)")
    _cluster_arguments(sim)
    sim.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sim.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    sim.set_defaults(func=cmd_simulate)

    observations = tuple(dict.fromkeys(o for n in system_names() for o in get_system(n).OBSERVATIONS))
    drives = tuple(dict.fromkeys(d for n in system_names() for d in get_system(n).DRIVE_FEATURES))
    tra = sub.add_parser(
        "train", help="fit a model of the Euler-style update on a trajectory file",
        description="Split the file's trajectories (train / validation / test, from a seed), fit the model on "
                    "the training part (early stopping on validation), and save it as a .keras file that "
                    "also records the features, dt, the split and the training history.",
        epilog=_train_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    tra.add_argument("--data", required=True, metavar="FILE", help="trajectory file to learn from")
    tra.add_argument("--model", required=True, choices=model_kinds())
    tra.add_argument("--set", action="append", metavar="NAME=VALUE", help="a model setting (repeatable)")
    tra.add_argument("--observation", default="full", choices=observations,
                     help="observe the whole state, or part of it where the system allows (the oscillator: "
                          "position) (default full)")
    tra.add_argument("--drive", choices=drives,
                     help="known-drive features: for the oscillator cos/sin of the drive phase, F(t), or none "
                          "(default: the system's first, phase for the oscillator, none where there is no drive)")
    tra.add_argument("--parameters", metavar="NAMES", help="comma-separated physical parameters given as inputs")
    tra.add_argument("--split", default="0.7,0.15,0.15",
                     help="train,validation,test fractions of trajectories (default %(default)s)")
    tra.add_argument("--split-seed", type=int, default=0, help="seed of the split (default %(default)s)")
    tra.add_argument("--hold-out", metavar="NAME=LO:HI",
                     help="test on the trajectories whose parameter lies in these intervals (generalisation); "
                          "train/validation split the rest by --split's first two fractions")
    tra.add_argument("--checkpoint-dir", metavar="DIR", help="resume a killed training from its last epoch")
    tra.add_argument("--output", "-o", metavar="PATH", help="the .keras model file to write")
    tra.add_argument("--quiet", "-q", action="store_true", help="no training progress")
    tra.set_defaults(func=cmd_train)

    rol = sub.add_parser(
        "rollout", help="roll a trained model out closed-loop and write the result as a trajectory file",
        description="Start each trajectory from its first true states (the context) and let the model run on "
                    "its own predictions with the known drive. The output uses the trajectory-file schema "
                    "(method rollout:KIND), with per-trajectory 'diverged' flags in /params.")
    rol.add_argument("--model", required=True, metavar="FILE", help="a .keras file written by physrnn train")
    rol.add_argument("--data", required=True, metavar="FILE", help="trajectory file with the true states")
    rol.add_argument("--select", choices=("test", "validation", "train", "all"),
                     help="which trajectories (default: the model's test split if --data is its training file, "
                          "else all)")
    rol.add_argument("--context", type=int, help="true states given before closing the loop (default: the "
                                                  "model's minimum)")
    rol.add_argument("--n-steps", type=int, help="rollout length including the context (default: all)")
    rol.add_argument("--output", "-o", required=True, metavar="PATH", help="the HDF5 file to write")
    rol.add_argument("--quiet", "-q", action="store_true")
    rol.set_defaults(func=cmd_rollout)

    ev = sub.add_parser("evaluate", help="score rollout files against the exact solutions they came from",
                        description="For each rollout file (from physrnn rollout), compare the closed-loop steps with "
                                    "the truth file it names: RMSE and NRMSE per component (mean over trajectories), "
                                    "max error, median valid time.")
    ev.add_argument("files", nargs="+", metavar="ROLLOUT")
    ev.add_argument("--valid-fraction", type=float, default=0.1,
                    help="valid time ends when the error exceeds this fraction of the signal's range (default 0.1)")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.set_defaults(func=cmd_evaluate)

    stu = sub.add_parser("study", help="run a study: simulate, train, roll out, evaluate, report",
                         description=textwrap.fill(
                             "Validate the study config, then run every stage, skipping those whose output for the "
                             "same inputs already exists under ROOT/cache (so an interrupted study resumes). The "
                             "report goes to ROOT/reports/NAME/.", 100),
                         epilog=_train_epilog().replace("--set NAME=VALUE, repeatable", "in [models.LABEL]", 1)
                         .split("\n\nexample:")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    stu.add_argument("config", metavar="STUDY.toml")
    stu.add_argument("--root", default="data", help="where stage outputs and reports go (default data)")
    stu.add_argument("--quiet", "-q", action="store_true", help="no stage log")
    stu.set_defaults(func=cmd_study)

    swp = sub.add_parser(
        "sweep", help="run a sweep of a study's settings and seeds on a Dask cluster, ranked by a closed-loop figure",
        description="Run every trial of the sweep (studies/sweeps/NAME.toml: a base study and the axes to vary) as "
                    "a task on a Dask cluster, each in a fresh process, and rank the settings by the objective over "
                    "their seeds. Finished trials are kept under ROOT/sweeps/NAME/trials, so a re-run resumes; the "
                    "report goes to ROOT/sweeps/NAME/report.html.",
        epilog="examples:\n  physrnn sweep studies/sweeps/gru-demo.toml                 # local cluster, one worker "
               "per core\n  physrnn sweep studies/sweeps/gru-demo.toml --workers 2\n"
               "  physrnn sweep studies/sweeps/gru-demo.toml --scheduler tcp://head-node:8786",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    swp.add_argument("config", metavar="SWEEP.toml")
    _cluster_arguments(swp)
    swp.add_argument("--root", default="data", help="where stage outputs and the sweep go (default data)")
    swp.add_argument("--start", choices=STARTS, default=DEFAULT_START,
                     help="how each trial's fresh process starts: forked from a launcher that has imported "
                          "TensorFlow once, or a new interpreter (default here: %(default)s; fork is the default "
                          "on Linux only)")
    swp.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    swp.add_argument("--quiet", "-q", action="store_true", help="no progress log")
    swp.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="rebuild a study's report from its stored results",
                         description="Rewrite a study's report (pages, tables, figures) from its results.json alone: "
                                     "no cache, data or models are read.")
    rep.add_argument("source", metavar="STUDY.toml|REPORT_DIR|results.json",
                     help="a study config (its report under ROOT/reports/NAME), or a report folder or its results.json")
    rep.add_argument("--root", default="data", help="where the study's outputs went (default %(default)s)")
    rep.add_argument("--missing-ok", action="store_true", help="a study never run is skipped with a note, not an error")
    rep.set_defaults(func=cmd_report)

    ins = sub.add_parser("inspect", help="validate trajectory files and summarise what they hold",
                         description="Read each file through the validating reader and print a summary.")
    ins.add_argument("files", nargs="+", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.set_defaults(func=cmd_inspect)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout``, batch schedulers and ``kill`` send), raised where the program is, so that every
    writer's clean-up runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:  # the entry point configures the process, before anything imports TensorFlow
        from ._quiet import quiet_tensorflow

        quiet_tensorflow()
    main_thread = threading.current_thread() is threading.main_thread()  # where a signal handler can be set
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return code
    except BrokenPipeError:  # `physrnn inspect ... | head`: the reader left; say nothing, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, TypeError, TrajectoryFileError, OSError) as err:  # StudyConfigError is a ValueError
        if os.environ.get("PHYSRNN_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"physrnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"physrnn {args.command}: terminated (SIGTERM); no partial output was kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"physrnn {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
