"""Benchmark: a sweep of 8 trials on a 2-worker Dask LocalCluster against the same trials run one after another.

    python benchmarks/bench_sweep.py [--sweep studies/sweeps/gru-demo.toml] [--workers 2]

Both runs start from empty roots (data simulated, every model trained from scratch), so the only difference is
the parallelism: the serial run trains every trial in this one process with TensorFlow's default threads; the
parallel run gives each worker its share of the cores and each trial a process of its own (its TensorFlow
start-up included in its time). Prints the wall times, the speed-up (target >= 1.6 on 2 cores), checks that both
give the same objective for every trial, and writes bench-results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from physrnn.cluster import connect, default_workers
from physrnn.sweep import load_sweep, run_sweep
from simulators.trajectory_file import software_versions

TARGET = 1.6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="studies/sweeps/gru-demo.toml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("bench-results/sweep.json"))
    args = parser.parse_args(argv)
    sweep = load_sweep(args.sweep)
    cores = default_workers()
    print(f"sweep {sweep.name}: {len(sweep.trials)} trials (+{len(sweep.baselines)} baseline runs), "
          f"{cores} cores", flush=True)

    def progress(message: str) -> None:
        if message.startswith("[sweep]"):
            print("  " + message, flush=True)

    with tempfile.TemporaryDirectory() as serial_root, tempfile.TemporaryDirectory() as parallel_root:
        started = time.perf_counter()
        serial = run_sweep(sweep, serial_root, log=progress)
        serial_s = time.perf_counter() - started
        print(f"serial, one process:      {serial_s:7.1f} s", flush=True)
        started = time.perf_counter()
        with connect(workers=args.workers) as client:
            parallel = run_sweep(sweep, parallel_root, client=client, log=progress,
                                 threads=max(1, cores // args.workers))
        parallel_s = time.perf_counter() - started
    same = all(a.get("objective") == b.get("objective") for a, b in zip(serial["trials"], parallel["trials"]))
    speedup = serial_s / parallel_s
    print(f"parallel, {args.workers} Dask workers: {parallel_s:7.1f} s  (cluster start-up included)")
    print(f"speed-up {speedup:.2f}x (target >= {TARGET}x on 2 cores): {'met' if speedup >= TARGET else 'NOT MET'}")
    print(f"same objective for every trial: {'yes' if same else 'NO'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "sweep": sweep.name, "trials": len(sweep.trials), "workers": args.workers, "cores": cores,
        "serial_seconds": serial_s, "parallel_seconds": parallel_s, "speedup": speedup, "target": TARGET,
        "same_objectives": same, "software": software_versions(),
        "trial_seconds": {t["id"]: [t["seconds"], p.get("process_seconds")]
                          for t, p in zip(serial["trials"], parallel["trials"])}}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
