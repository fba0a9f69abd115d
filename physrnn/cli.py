"""The ``physrnn`` command.

Every sub-command turns bad input into one line on stderr and exit status 2 (no traceback; set
``PHYSRNN_DEBUG=1`` to see one), and an interrupted run into exit status 130; neither leaves a half-written
output file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simulators.ensemble import EnsembleConfig, simulate_to_file
from simulators.trajectory_file import TrajectoryFileError, read_trajectories

_SPEC_KINDS = ("uniform", "loguniform", "choice", "values", "linspace")

SIMULATE_EPILOG = """\
parameter specs (--param NAME=SPEC, repeatable; same meaning as in a config file's [params] table):
  NAME=0.2                     the same value for every trajectory
  NAME=uniform:LO,HI           uniform in [LO, HI)      (also loguniform:LO,HI)
  NAME=choice:A,B,C            drawn from the list
  NAME=values:A,B,...          one value per trajectory, exactly
  NAME=linspace:LO,HI          evenly spaced over the trajectories
  drive_*=SPEC;SPEC            one spec per drive term, for a sum of cosine drives
oscillator parameters: damping natural_frequency drive_amplitude drive_frequency drive_phase x0 v0
eigen parameters:      size matrix(=random) shared_matrix(=true|false) initial_norm

examples:
  physrnn simulate --config studies/data/driven.toml --output data/driven.h5
  physrnn simulate --system oscillator --n-traj 100 --dt 0.05 --t-end 40 --seed 1 \\
      --param damping=0.2 --param drive_amplitude=0.5 --param drive_frequency=1.3 --output data/x.h5
"""


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
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=config.n_traj, unit="traj", desc=f"simulate {config.system}", mininterval=0.5,
                   file=sys.stderr)
    try:
        path = simulate_to_file(config, args.output, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        print(f"wrote {path}")
    return 0


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
    for i, path in enumerate(args.files):
        if i:
            print()
        if args.json:
            tr = read_trajectories(path)
            print(json.dumps({"path": path, "system": tr.system, "method": tr.method, "n_traj": tr.n_traj,
                              "n_steps": tr.n_steps, "dt": tr.dt, "state_names": tr.state_names,
                              "drive_names": tr.drive_names, "attrs": tr.attrs,
                              "params": {k: [float(np.min(v)), float(np.max(v))] for k, v in tr.params.items()}},
                             indent=2, default=str))
        else:
            print(describe(path))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="physrnn", description="Exact physics, learned time-step updates, honest comparisons.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sim = sub.add_parser(
        "simulate", help="generate an ensemble of exact (or integrated) trajectories into an HDF5 file",
        description="Sample parameters and initial states from a seed, solve every trajectory, and write a "
                    "trajectory file (schema physrnn.trajectories, see data/README.md). Flags override the "
                    "config file.",
        epilog=SIMULATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sim.add_argument("--config", metavar="FILE", help="TOML ensemble config (see studies/data/)")
    sim.add_argument("--system", choices=("oscillator", "eigen"))
    sim.add_argument("--n-traj", type=int, metavar="N", help="number of trajectories")
    sim.add_argument("--dt", type=float, help="output time step")
    sim.add_argument("--n-steps", type=int, metavar="N", help="number of output times, t = 0 included")
    sim.add_argument("--t-end", metavar="T", help="final time (a whole number of dt), or 'auto' for the eigen flow")
    sim.add_argument("--seed", type=int, help="root seed of every random draw")
    sim.add_argument("--method", choices=("exact", "euler", "rk4", "reference"),
                     help="closed form (default), or an integrator")
    sim.add_argument("--rtol", type=float, help="relative tolerance of the reference integrator")
    sim.add_argument("--atol", type=float, help="absolute tolerance of the reference integrator")
    sim.add_argument("--param", action="append", metavar="NAME=SPEC", help="a parameter spec (repeatable)")
    sim.add_argument("--output", "-o", metavar="PATH", help="the HDF5 file to write")
    sim.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sim.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    sim.set_defaults(func=cmd_simulate)

    ins = sub.add_parser("inspect", help="validate trajectory files and summarise what they hold",
                         description="Read each file through the validating reader and print a summary.")
    ins.add_argument("files", nargs="+", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, TrajectoryFileError, OSError) as err:
        if os.environ.get("PHYSRNN_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"physrnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"physrnn {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
