"""Blind mutation testing (``make mutants``, ``make mutants-changed``): mutmut generates the mutants itself.

``make mutants`` asks mutmut for every mutant of the science modules (``[tool.mutmut] only_mutate`` in
pyproject.toml), draws a seeded random sample of them, runs each against the tests that call the mutated function
(mutmut's own record of which test calls which function, taken from one run of the default suite), and prints the
score with its 95 % interval, per module, and every survivor with its diff. It fails below the gate: 85 % over the
sample, 80 % in each module with at least 20 sampled mutants.

``make mutants-changed`` runs every mutant of the functions changed since a git ref (default ``origin/main``, else
the last tag), for use before a commit that adds science code; it prints the same table and every survivor.

A survivor is either a missing test or an *equivalent* mutant: one that changes no output a user could see. The
equivalent ones are listed in ``mutation/equivalent.toml`` with the reason and the mutated text; they are not
counted, and an entry whose text no longer matches its mutant (the function changed, mutmut renumbered) is reported
as stale and ignored. Killed: the tests failed, or ran past mutmut's time limit (a mutant that hangs is caught).

The working tree is never modified: mutmut writes its copy of the tree, and its caches, to ``mutants/``.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
EQUIVALENT = ROOT / "mutation" / "equivalent.toml"
LOG = MUTANTS / "mutmut-run.log"
SEPARATOR = "ǁ"  # mutmut's class-name separator in a mangled method name

# mutmut's exit codes (mutmut.stats.status_by_exit_code), grouped as this gate counts them.
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # mutmut's word: killed, survived, timeout, no tests, suspicious, ...

    @property
    def module(self) -> str:
        parts = self.name.split(".")
        for i, part in enumerate(parts):
            if part.startswith(("x_", "x" + SEPARATOR)):
                return ".".join(parts[:i])
        return self.name

    @property
    def killed(self) -> bool:
        return self.status in KILLED


def wilson(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sound at small n and near 100 %, unlike p ± 1.96 σ)."""
    if n == 0:
        return 0.0, 1.0
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}


def _mutmut(*args: str, log=None) -> subprocess.CompletedProcess:
    """Run mutmut in the repository root (its config is [tool.mutmut] in pyproject.toml)."""
    command = [sys.executable, "-m", "mutmut", *args]
    return subprocess.run(command, cwd=ROOT, env=_env(), stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)


def generate() -> list[str]:
    """Have mutmut write every mutant of the science modules to mutants/ and run the default suite once to record
    which tests call which function and how long each takes (reused when mutants/ is kept); return the names."""
    code = ("from mutmut.__main__ import copy_src_dir, copy_also_copy_files, setup_source_paths, create_mutants\n"
            "from mutmut.__main__ import collect_or_load_stats\n"
            "from mutmut.mutation.trampoline import set_mutant_under_test\n"
            "from mutmut.workers.isolation import get_mutant_runner\n"
            "set_mutant_under_test('mutant_generation')\n"
            "copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants(2)\n"
            "collect_or_load_stats(get_mutant_runner(2), mutants_caught_by_type_checker={},\n"
            "                      apply_config_invalidation=True)\n")
    MUTANTS.mkdir(exist_ok=True)
    with LOG.open("w") as log:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                             text=True, check=False)
    if out.returncode != 0:
        tail = "".join(LOG.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"mutmut could not generate the mutants or collect its stats; the end of {LOG}:\n{tail}")
    return sorted(_results())


def cap_tests(budget: float) -> tuple[int, int]:
    """Keep, for each function, the tests that call it fastest first up to ``budget`` seconds of their recorded
    time (always the fastest one): mutmut's map with the slow end-to-end tests trimmed, which would otherwise
    cost minutes for every survivor in a widely used function. Returns the (kept, recorded) test-function pairs."""
    path = MUTANTS / "mutmut-stats.json"
    stats = json.loads(path.read_text())
    duration = stats["duration_by_test"]
    kept = recorded = 0
    for name, tests in stats["tests_by_mangled_function_name"].items():
        chosen, total = [], 0.0
        for test in sorted(tests, key=lambda t: (duration.get(t, 0.0), t)):
            if chosen and total + duration.get(test, 0.0) > budget:
                break
            chosen.append(test)
            total += duration.get(test, 0.0)
        stats["tests_by_mangled_function_name"][name] = chosen
        kept, recorded = kept + len(chosen), recorded + len(tests)
    path.write_text(json.dumps(stats, indent=1))
    return kept, recorded


def _results() -> dict[str, int | None]:
    """Every mutant mutmut knows of, with its recorded exit code (None: not run)."""
    codes: dict[str, int | None] = {}
    for meta in MUTANTS.rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def _status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


@lru_cache(maxsize=None)
def _diff(name: str) -> str:
    out = _mutmut("show", name)
    return out.stdout


def _equivalents() -> dict[str, dict]:
    if not EQUIVALENT.exists():
        return {}
    entries = tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])
    return {e["mutant"]: e for e in entries}


def run(names: list[str], *, max_children: int) -> dict[str, int | None]:
    """Run mutmut on the named mutants (patterns allowed), printing progress every 30 s; return the exit codes."""
    done = threading.Event()
    wanted = [n for n in names if "*" not in n]
    started = time.perf_counter()

    def progress() -> None:
        while not done.wait(30):
            codes = _results()
            checked = [codes.get(n) for n in wanted if codes.get(n) is not None]
            survived = sum(_status(c) not in KILLED for c in checked)
            total = len(wanted) or "?"
            print(f"  {time.perf_counter() - started:5.0f} s: {len(checked)}/{total} mutants run, "
                  f"{survived} not killed (mutmut's log: {LOG.relative_to(ROOT)})", flush=True)

    # Explicitly named mutants are rerun, whatever an earlier run recorded; clear them so progress counts this run.
    for meta in MUTANTS.rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        keys = [k for k in data["exit_code_by_key"] if k in set(wanted)]
        if keys:
            for k in keys:
                data["exit_code_by_key"][k] = None
            meta.write_text(json.dumps(data))
    thread = threading.Thread(target=progress, daemon=True)
    thread.start()
    with LOG.open("a") as log:
        out = _mutmut("run", "--max-children", str(max_children), *names, log=log)
    done.set()
    if out.returncode != 0:
        tail = "".join(LOG.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"mutmut run failed (exit {out.returncode}); the end of {LOG}:\n{tail}")
    return _results()


def report(outcomes: list[Outcome], *, gate: float | None, module_gate: float, min_module: int) -> int:
    """Print the score per module and overall with 95 % intervals, every survivor with its diff; 1 if below gate."""
    equivalents = _equivalents()
    counted, equivalent, stale = [], [], []
    for o in outcomes:
        entry = equivalents.get(o.name)
        if entry is not None and not o.killed:
            if entry["change"] in _diff(o.name):
                equivalent.append((o, entry["reason"]))
                continue
            stale.append(o.name)
        counted.append(o)
    by_module: dict[str, list[Outcome]] = defaultdict(list)
    for o in counted:
        by_module[o.module].append(o)
    print(f"\n{'module':<34} {'killed':>7} {'of':>4} {'score':>7}   95 % interval")
    failed = []
    for module in sorted(by_module):
        group = by_module[module]
        k, n = sum(o.killed for o in group), len(group)
        lo, hi = wilson(k, n)
        flag = ""
        if gate is not None and n >= min_module and k / n < module_gate:
            flag = f"  below {module_gate:.0%}"
            failed.append(module)
        print(f"{module:<34} {k:>7} {n:>4} {k / n:>7.1%}   [{lo:.1%}, {hi:.1%}]{flag}")
    k, n = sum(o.killed for o in counted), len(counted)
    lo, hi = wilson(k, n)
    score = k / n if n else 1.0
    print(f"{'all':<34} {k:>7} {n:>4} {score:>7.1%}   [{lo:.1%}, {hi:.1%}]"
          f"   ({len(equivalent)} equivalent, not counted)")
    survivors = [o for o in counted if not o.killed]
    for o in survivors:
        print(f"\nSURVIVOR {o.name} [{o.status}]")
        print("\n".join(line for line in _diff(o.name).splitlines()[1:] if line.startswith(("+", "-", "@"))))
    for o, reason in equivalent:
        print(f"  equivalent {o.name}: {reason}")
    for name in stale:
        print(f"  STALE equivalent entry {name}: its change no longer matches the mutant (function edited?)")
    if gate is None:
        return 0
    verdict = score >= gate and not failed
    print(f"\nscore {score:.1%} over {n} sampled mutants (gate {gate:.0%} overall, {module_gate:.0%} per module "
          f"with at least {min_module}): {'passed' if verdict else 'FAILED'}")
    return 0 if verdict else 1


# ------------------------------------------------------------------------------------------ changed functions
def _default_ref() -> str:
    """origin/main, else the last tag, else HEAD (the uncommitted changes)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    if git("rev-parse", "--verify", "-q", "origin/main").returncode == 0:
        return "origin/main"
    tag = git("describe", "--tags", "--abbrev=0")
    return tag.stdout.strip() if tag.returncode == 0 else "HEAD"


def _mutated_files() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    files = [str(p.relative_to(ROOT)) for src in config["source_paths"] for p in (ROOT / src).rglob("*.py")]
    return sorted(f for f in files if any(fnmatch.fnmatch(f, pat) for pat in config["only_mutate"]))


def changed_functions(since: str) -> list[str]:
    """mutmut name patterns (module.x_func__mutmut_*) for each science function whose lines changed since ``since``
    (committed or not); new functions count as changed."""
    patterns = []
    for path in _mutated_files():
        diff = subprocess.run(["git", "diff", "-U0", since, "--", path], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
        lines = set()
        for m in re.finditer(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", diff, flags=re.M):
            start, count = int(m.group(1)), int(m.group(2) or 1)
            lines.update(range(start, start + max(count, 1)))
        if not lines:
            continue
        module = path[:-3].replace("/", ".").removesuffix(".__init__")
        tree = ast.parse((ROOT / path).read_text())
        for node, cls in _functions(tree):
            if lines & set(range(node.lineno, node.end_lineno + 1)):
                mangled = f"x{SEPARATOR}{cls}{SEPARATOR}{node.name}" if cls else f"x_{node.name}"
                patterns.append(f"{module}.{mangled}__mutmut_*")
    return sorted(set(patterns))


def _functions(tree: ast.Module):
    """Top-level functions and methods of top-level classes: what mutmut mutates."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, None
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield item, node.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="how many mutants to draw (default 400; with --changed, all of "
                                                   "the changed functions' unless given)")
    parser.add_argument("--seed", type=int, default=26, help="the sample's seed (default 26)")
    parser.add_argument("--changed", action="store_true", help="every mutant of the functions changed since --since")
    parser.add_argument("--since", help="the git ref for --changed (default origin/main, else the last tag)")
    parser.add_argument("--keep", action="store_true",
                        help="reuse mutants/ and mutmut's record of which tests call what (default: start clean)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--test-budget", type=float, default=10.0,
                        help="seconds of recorded test time each mutant's function may use, fastest tests first")
    parser.add_argument("--gate", type=float, default=0.85, help="the sample's score below which the run fails")
    parser.add_argument("--module-gate", type=float, default=0.80, help="the per-module score below which it fails")
    parser.add_argument("--min-module", type=int, default=20, help="modules with fewer sampled mutants are not gated")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not args.keep and not args.changed and MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    print("mutmut: generating the mutants of the science modules; running the default suite once to record "
          "which tests call which function (about 8 minutes on 2 cores) ...", flush=True)
    every = generate()
    kept, recorded = cap_tests(args.test_budget)
    print(f"{len(every)} mutants; each runs the tests that call its function, fastest first, up to "
          f"{args.test_budget:g} s of them ({kept} of {recorded} test-function pairs kept)", flush=True)
    if args.changed:
        since = args.since or _default_ref()
        names = changed_functions(since)
        if not names:
            print(f"no science function changed since {since}")
            return 0
        mine = [n for n in every if any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), n) for p in names)]
        if args.sample is None:
            print(f"{len(names)} functions changed since {since}; running all {len(mine)} of their mutants", flush=True)
            codes = run(names, max_children=args.jobs)
            picked = [n for n in codes if n in set(mine)]
        else:
            picked = sorted(random.Random(args.seed).sample(mine, min(args.sample, len(mine))))
            print(f"{len(names)} functions changed since {since}; running a sample of {len(picked)} of their "
                  f"{len(mine)} mutants (seed {args.seed})", flush=True)
            codes = run(picked, max_children=args.jobs)
        gate = None
    else:
        picked = sorted(random.Random(args.seed).sample(every, min(args.sample or 400, len(every))))
        print(f"running a sample of {len(picked)} (seed {args.seed})", flush=True)
        codes = run(picked, max_children=args.jobs)
        gate = args.gate
    outcomes = [Outcome(n, _status(codes.get(n))) for n in picked]
    not_run = [o.name for o in outcomes if o.status == "not checked"]
    if not_run:
        print(f"{len(not_run)} mutants were not run (see {LOG}): {not_run[:5]} ...")
    status = report([o for o in outcomes if o.status != "not checked"], gate=gate, module_gate=args.module_gate,
                    min_module=args.min_module)
    print(f"{time.perf_counter() - started:.0f} s in all")
    return status


if __name__ == "__main__":
    sys.exit(main())
