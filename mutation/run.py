"""The mutation gate (``make mutants``): plant each named mutant of ``mutation/mutants.toml`` in a scratch copy of
the tree, run the tests that should catch it, and print the kill rate and every survivor.

A mutant is a small, plausible bug: one exact text replacement in one file. It is *killed* when its tests fail.
A mutant marked ``equivalent`` (with the reason) changes no behaviour the tests could observe; it is listed,
not counted. A mutant whose ``find`` text no longer occurs exactly once in its file is *stale* and fails the run:
the list must follow the code.

The working tree is never modified: every mutant runs in its own copy, with ``PYTHONPATH`` pointing there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ("simulators", "physrnn", "tests", "studies", "pyproject.toml", "README.md")


def _load(path: Path) -> list[dict]:
    mutants = tomllib.loads(path.read_text())["mutant"]
    names = [m["name"] for m in mutants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"mutants: duplicate names {duplicates}")
    return mutants


def _check(mutant: dict) -> str | None:
    """Why the mutant cannot be planted (stale), or None."""
    text = (ROOT / mutant["file"]).read_text()
    count = text.count(mutant["find"])
    if count != 1:
        return f"its find text occurs {count} times in {mutant['file']} (must be once)"
    return None


def _run(mutant: dict, scratch: Path, timeout: int) -> tuple[str, float, str]:
    """Plant the mutant in a fresh copy and run its tests: ("killed" | "survived" | "timeout", seconds, tail)."""
    tree = scratch / mutant["name"]
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tree / name)
    target = tree / mutant["file"]
    target.write_text(target.read_text().replace(mutant["find"], mutant["replace"], 1))
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "",
               *mutant["tests"].split()]
    start = time.perf_counter()
    try:
        out = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    seconds = time.perf_counter() - start
    tail = (out.stdout.strip().splitlines() or [""])[-1]
    if out.returncode == 1:  # tests ran and failed: the mutant was caught
        return "killed", seconds, tail
    if out.returncode == 0:
        return "survived", seconds, tail
    return f"error (pytest exit {out.returncode})", seconds, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", default=str(ROOT / "mutation" / "mutants.toml"), help="the mutants file")
    parser.add_argument("--only", nargs="*", help="run only these mutants (by name)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per mutant before it counts as a timeout")
    parser.add_argument("--gate", type=float, default=0.9, help="the kill rate below which the run fails")
    args = parser.parse_args(argv)
    mutants = _load(Path(args.list))
    if args.only:
        unknown = sorted(set(args.only) - {m["name"] for m in mutants})
        if unknown:
            parser.error(f"unknown mutants {unknown}")
        mutants = [m for m in mutants if m["name"] in args.only]
    stale = [(m["name"], why) for m in mutants if (why := _check(m))]
    if stale:
        for name, why in stale:
            print(f"STALE {name}: {why}")
        return 2
    counted = [m for m in mutants if "equivalent" not in m]
    print(f"{len(mutants)} mutants ({len(mutants) - len(counted)} marked equivalent, not run), one at a time",
          flush=True)
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="physrnn-mutants-") as scratch:
        for i, m in enumerate(counted, 1):
            status, seconds, tail = _run(m, Path(scratch), args.timeout)
            results.append((m, status, tail))
            print(f"[{i:>3}/{len(counted)}] {status:<9} {seconds:6.1f} s  {m['name']}  ({m['file']})", flush=True)
    killed = sum(status == "killed" for _, status, _ in results)
    rate = killed / len(results) if results else 1.0
    print(f"\nkill rate: {killed}/{len(results)} = {rate:.1%} of the non-equivalent mutants "
          f"(gate {args.gate:.0%}); {time.perf_counter() - started:.0f} s")
    for m, status, tail in results:
        if status != "killed":
            print(f"  SURVIVOR {m['name']} ({m['file']}): {m['why']} [{status}; {tail}]")
    for m in mutants:
        if "equivalent" in m:
            print(f"  equivalent {m['name']} ({m['file']}): {m['equivalent']}")
    return 0 if rate >= args.gate else 1


if __name__ == "__main__":
    sys.exit(main())
