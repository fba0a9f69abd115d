"""Benchmark: a sweep of 8 trials on a 2-worker Dask LocalCluster against the same trials run one after another.

    python benchmarks/bench_sweep.py [--sweep studies/sweeps/gru-demo.toml] [--workers 2] [--start fork|exec]

Both runs start from empty roots (data simulated, every model trained from scratch), so the only difference is
the parallelism: the serial run trains every trial in this one process with TensorFlow's default threads; the
parallel run gives each worker its share of the cores and each trial a process of its own, started as `physrnn
sweep` starts it (--start; its start-up, and the launchers' imports, included in the time). Prints the wall
times, the speed-up (target >= 1.6 on 2 cores) beside the machine's own ceiling measured in the same run (how
much more pure-CPU work 2 processes do than 1: below 2 where a VM's cores are shared), checks that both give the
same objective for every trial, and writes bench-results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from physrnn.cluster import connect, default_workers
from physrnn.sweep import DEFAULT_START, STARTS, load_sweep, run_sweep
from simulators.trajectory_file import software_versions

TARGET = 1.6
_SPIN = "x = 0\nfor i in range(25_000_000):\n    x += i * i\n"  # a few seconds of pure CPU, no memory traffic


def machine_ceiling(workers: int) -> float:
    """How much more CPU-bound work ``workers`` processes get done at once than one alone, measured now: the most
    any parallel run can gain here (``workers`` on free cores; less where the host shares them, as VMs do)."""
    def wall(n: int) -> float:
        started = time.perf_counter()
        for process in [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(n)]:
            process.wait()
        return time.perf_counter() - started

    return workers * wall(1) / wall(workers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="studies/sweeps/gru-demo.toml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start", choices=STARTS, default=DEFAULT_START)
    parser.add_argument("--json", type=Path, default=Path("bench-results/sweep.json"))
    args = parser.parse_args(argv)
    sweep = load_sweep(args.sweep)
    cores = default_workers()
    print(f"sweep {sweep.name}: {len(sweep.trials)} trials (+{len(sweep.baselines)} baseline runs), "
          f"{cores} cores", flush=True)

    def progress(message: str) -> None:
        if message.startswith("[sweep]"):
            print("  " + message, flush=True)

    ceiling = [machine_ceiling(args.workers)]
    with tempfile.TemporaryDirectory() as serial_root, tempfile.TemporaryDirectory() as parallel_root:
        started = time.perf_counter()
        serial = run_sweep(sweep, serial_root, log=progress)
        serial_s = time.perf_counter() - started
        print(f"serial, one process:      {serial_s:7.1f} s", flush=True)
        started = time.perf_counter()
        with connect(workers=args.workers) as client:
            parallel = run_sweep(sweep, parallel_root, client=client, log=progress,
                                 threads=max(1, cores // args.workers), start=args.start)
        parallel_s = time.perf_counter() - started
    ceiling.append(machine_ceiling(args.workers))
    same = all(a.get("objective") == b.get("objective") for a, b in zip(serial["trials"], parallel["trials"]))
    speedup = serial_s / parallel_s
    print(f"parallel, {args.workers} Dask workers: {parallel_s:7.1f} s  (cluster start-up included; trials started "
          f"by {args.start})")
    print(f"speed-up {speedup:.2f}x (target >= {TARGET}x on 2 cores): {'met' if speedup >= TARGET else 'NOT MET'}")
    print(f"the machine's own ceiling, measured before and after: {args.workers} CPU-bound processes do "
          f"{ceiling[0]:.2f}x and {ceiling[1]:.2f}x the work of one")
    print(f"same objective for every trial: {'yes' if same else 'NO'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "sweep": sweep.name, "trials": len(sweep.trials), "workers": args.workers, "cores": cores, "start": args.start,
        "serial_seconds": serial_s, "parallel_seconds": parallel_s, "speedup": speedup, "target": TARGET,
        "machine_ceiling": ceiling,
        "same_objectives": same, "software": software_versions(),
        "trial_seconds": {t["id"]: [t["seconds"], p.get("process_seconds")]
                          for t, p in zip(serial["trials"], parallel["trials"])}}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
