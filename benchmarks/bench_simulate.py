"""Benchmark: generating and writing an oscillator ensemble, closed form and batched RK4 against a loop of solve_ivp.

Every figure is measured in this run and printed beside its baseline (a Python loop over
``scipy.integrate.solve_ivp`` at default tolerances, on the same ensemble) as a ratio. Each path includes
writing the same HDF5 file. Errors are the maximum absolute error in (x, v) over the whole ensemble against
the closed form; the closed form's own error is measured against an independent oracle, the exact
one-step propagator ``expm(M Δt)`` of the augmented linear system applied step by step.

    python benchmarks/bench_simulate.py [--n-traj 1000] [--n-steps 2000] [--loop-subset N]

The batched paths are timed best of ``--repeats`` (first calls pay page faults on fresh memory).
``--loop-subset N`` times the solve_ivp loops on the first N trajectories only and scales their time to the
whole ensemble (said so in the output); the default runs them on every trajectory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from simulators import LinearOscillator, solve
from simulators.trajectory_file import Trajectories, software_versions, write_trajectories


def ensemble(n_traj: int, seed: int = 0) -> tuple[LinearOscillator, np.ndarray]:
    rng = np.random.default_rng(seed)
    osc = LinearOscillator(damping=rng.uniform(0.0, 0.5, n_traj), natural_frequency=1.0, drive_amplitude=0.5,
                           drive_frequency=rng.uniform(0.5, 2.0, n_traj))
    return osc, rng.uniform(-1.0, 1.0, (n_traj, 2))


def write(path: Path, osc: LinearOscillator, s0: np.ndarray, t: np.ndarray, states: np.ndarray, method: str):
    params = dict(osc.params(), x0=s0[:, 0], v0=s0[:, 1])
    write_trajectories(path, Trajectories(system="oscillator", time=t, states=states, params=params,
                                          state_names=("x", "v"), state_units=("L", "L/T"), method=method,
                                          drive=osc.drive(t), drive_names=osc.drive_names()))


def propagator_oracle(osc: LinearOscillator, s0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Step z = (x, v, cos(Ωt+φ), sin(Ωt+φ)) with the exact propagator expm(M Δt), batched over trajectories."""
    n = osc.n_traj
    m = np.zeros((n, 4, 4))
    m[:, 0, 1] = 1.0
    m[:, 1, 0] = -osc.natural_frequency**2
    m[:, 1, 1] = -osc.damping
    m[:, 1, 2] = osc.drive_amplitude[:, 0]
    m[:, 2, 3] = -osc.drive_frequency[:, 0]
    m[:, 3, 2] = osc.drive_frequency[:, 0]
    step = expm(m * (t[1] - t[0]))
    z = np.concatenate([s0, np.cos(osc.drive_phase), np.sin(osc.drive_phase)], axis=1)
    out = np.empty((n, t.size, 2))
    out[:, 0] = s0
    for i in range(1, t.size):
        z = np.einsum("nij,nj->ni", step, z)
        out[:, i] = z[:, :2]
    return out


def solve_ivp_loop(osc: LinearOscillator, s0: np.ndarray, t: np.ndarray, n: int, **tol) -> np.ndarray:
    out = np.empty((n, t.size, 2))
    for i in range(n):
        eta, w0 = osc.damping[i], osc.natural_frequency[i]
        f, om, ph = osc.drive_amplitude[i, 0], osc.drive_frequency[i, 0], osc.drive_phase[i, 0]

        def rhs(tt, y, eta=eta, w0=w0, f=f, om=om, ph=ph):
            return [y[1], f * np.cos(om * tt + ph) - eta * y[1] - w0 * w0 * y[0]]

        sol = solve_ivp(rhs, (t[0], t[-1]), s0[i], t_eval=t, **tol)
        out[i] = sol.y.T
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-traj", type=int, default=1000)
    parser.add_argument("--n-steps", type=int, default=2000)
    parser.add_argument("--dt", type=float, default=0.05)
    parser.add_argument("--loop-subset", type=int, default=None, metavar="N")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for the batched paths")
    parser.add_argument("--json", type=Path, default=Path("bench-results/simulate.json"))
    args = parser.parse_args(argv)
    osc, s0 = ensemble(args.n_traj)
    t = args.dt * np.arange(args.n_steps)
    n_loop = min(args.loop_subset or args.n_traj, args.n_traj)
    scale = args.n_traj / n_loop

    compute, total, states = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        def timed(name, fn, n_timed=args.n_traj, repeats=1):
            """Best-of-``repeats`` compute time, plus one write; scaled to the whole ensemble if a subset ran."""
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                states[name] = fn()
                seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            write(Path(tmp) / "out.h5", osc.take(slice(0, n_timed)), s0[:n_timed], t, states[name], name)
            written = time.perf_counter() - start
            compute[name] = min(seconds) * args.n_traj / n_timed
            total[name] = (min(seconds) + written) * args.n_traj / n_timed
            print(f"  {name:<28} {total[name]:8.2f} s", file=sys.stderr, flush=True)

        print(f"generating and writing {args.n_traj} trajectories x {args.n_steps} steps (dt = {args.dt}):",
              file=sys.stderr)
        timed("closed form", lambda: solve(osc, s0, t), repeats=args.repeats)
        timed("batched RK4", lambda: solve(osc, s0, t, method="rk4"), repeats=args.repeats)
        timed("solve_ivp loop (default)", lambda: solve_ivp_loop(osc, s0, t, n_loop), n_loop)
        timed("solve_ivp loop (rtol 1e-10)",
              lambda: solve_ivp_loop(osc, s0, t, n_loop, rtol=1e-10, atol=1e-12), n_loop)

    exact = states["closed form"]
    err = {"closed form": np.abs(exact - propagator_oracle(osc, s0, t)).max()}
    for name in list(states)[1:]:
        err[name] = np.abs(states[name] - exact[: len(states[name])]).max()
    base = "solve_ivp loop (default)"
    note = "" if n_loop == args.n_traj else f" (loops timed on {n_loop} trajectories, scaled x{scale:g})"
    print(f"\nGenerate + write {args.n_traj} driven oscillators x {args.n_steps} steps, dt {args.dt}{note}")
    print("baseline: a Python loop over scipy solve_ivp (RK45, default tolerances), same run, same file layout;"
          f" batched paths best of {args.repeats}")
    print(f"{'method':<29}{'compute s':>10}{'ratio':>8}{'+write s':>10}{'ratio':>8}{'max |error|':>13}  against")
    for name in compute:
        against = "expm propagator" if name == "closed form" else "closed form"
        print(f"{name:<29}{compute[name]:>10.3f}{compute[base] / compute[name]:>7.1f}x{total[name]:>10.3f}"
              f"{total[base] / total[name]:>7.1f}x{err[name]:>13.2e}  {against}")
    speedup = compute[base] / compute["closed form"]
    ok = speedup >= 50 and err["closed form"] <= 1e-10
    print(f"\ntarget: closed form >= 50x faster than the default-tolerance loop, max error <= 1e-10: "
          f"{speedup:.0f}x, {err['closed form']:.1e} -> {'met' if ok else 'NOT MET'}")
    write_s = total["closed form"] - compute["closed form"]
    print(f"writing (shuffle + gzip, one core) takes {write_s:.2f} s of every path and caps the write-inclusive "
          f"ratio at {total[base] / write_s:.0f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "n_traj": args.n_traj, "n_steps": args.n_steps, "dt": args.dt, "loop_subset": n_loop,
        "compute_seconds": compute, "compute_and_write_seconds": total,
        "max_error": {k: float(v) for k, v in err.items()},
        "compute_speedup_vs_default_loop": {k: compute[base] / v for k, v in compute.items()},
        "target_met": bool(ok), "software": software_versions()},
        indent=2))
    print(f"(written to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
