"""Ensembles: parameters and initial states drawn from explicit seeds, solved in batches, written to HDF5.

An :class:`EnsembleConfig` is what a ``[simulate]``-style TOML file deserialises into, what
``physrnn simulate`` builds from its flags, and what a trajectory file records (as JSON) in its ``config``
attribute, so that any file can be regenerated from itself.

Each parameter is given by a *spec* (a value, or ``{uniform = [lo, hi]}`` and the like; see
:mod:`simulators.params`), and the parameters a system takes are declared by the system itself (its
``Params`` class, see :mod:`simulators.system`): this module names no system.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from ._validation import check_memory
from .integrate import METHODS, REFERENCE_ATOL, REFERENCE_RTOL, solve
from .params import EnsembleParams, ParamSpec, finite_number, reject_unknown
from .system import PhysicalSystem, get_system, system_names
from .trajectory_file import Trajectories, TrajectoryWriter, check_output_path, first_nonfinite

__all__ = ["EnsembleConfig", "ParamSpec", "generate", "join_shards", "shard_blocks", "shard_path", "simulate_shard",
           "simulate_to_file", "system_from_params"]

_finite = finite_number


@dataclass(frozen=True, kw_only=True)
class EnsembleConfig:
    """Everything that determines an ensemble file, validated at construction.

    Parameters
    ----------
    system : str
        A registered system (:func:`simulators.system.system_names`).
    n_traj : int
        Number of trajectories.
    dt : float
        Output time step (> 0).
    n_steps : int, optional
        Number of output times, including t = 0. Give this or ``t_end``.
    t_end : float or "auto", optional
        Final time, a whole number of ``dt``. ``"auto"`` (systems that define it, such as the eigen flow, whose
        horizon is the latest time at which the slowest trajectory's Rayleigh quotient is within 1e-10 of λmax):
        the system's :meth:`~simulators.system.PhysicalSystem.auto_t_end`, rounded up to a whole step.
    seed : int
        Root of every random draw.
    method : {"exact", "euler", "rk4", "reference", "rk23"}
    rtol, atol : float
        Tolerances of the reference integrator.
    params : EnsembleParams
        The system's own parameter specs (its ``Params`` class).
    segments : dict, optional
        ``{start = T0, spacing = S}``: the trajectories are segments of *one* orbit (the first draw of the
        parameters and initial state), solved once from t = 0 and cut: trajectory j is the orbit on
        [T0 + j S, T0 + j S + t_end], its own time starting at 0. Gauthier et al.'s Lorenz-63 protocol trains
        and forecasts on consecutive stretches of one orbit (warm-up T0, trials S apart); an integrator with its
        own error (``rk23``) then makes the segments as one call of it would. T0 and S are whole numbers of
        ``dt``; autonomous systems only (a drive would need the absolute time).
    """

    system: str
    n_traj: int
    dt: float
    n_steps: int | None = None
    t_end: float | str | None = None
    seed: int = 0
    method: str = "exact"
    rtol: float = REFERENCE_RTOL
    atol: float = REFERENCE_ATOL
    params: EnsembleParams = field(default=None)  # type: ignore[assignment]
    segments: Mapping[str, float] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnsembleConfig:
        """From a parsed TOML/JSON table; unknown keys and wrong types are rejected, naming the key."""
        allowed = [f.name for f in fields(cls)]
        reject_unknown("the ensemble config", d, allowed)
        if "system" not in d:
            raise ValueError(f"the ensemble config has no 'system'; set system = one of {', '.join(system_names())}")
        kw = dict(d)
        system = get_system(kw["system"])
        params = kw.pop("params", {})
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a table, got {params!r}")
        return cls(**kw, params=system.Params.from_dict(params, system.system))

    @property
    def system_class(self) -> type[PhysicalSystem]:
        return get_system(self.system)

    def __post_init__(self) -> None:
        params_class = get_system(self.system).Params
        if self.params is None:
            object.__setattr__(self, "params", params_class())
        if not isinstance(self.params, params_class):
            raise TypeError(f"params of a {self.system} ensemble must be {params_class.__name__}")
        for name in ("n_traj", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        if self.n_traj < 1:
            raise ValueError(f"n_traj must be >= 1, got {self.n_traj}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        dt = _finite("dt", self.dt)
        if dt <= 0:
            raise ValueError(f"dt = {self.dt!r} must be > 0")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name in ("rtol", "atol"):
            if _finite(name, getattr(self, name)) <= 0:
                raise ValueError(f"{name} = {getattr(self, name)!r} must be > 0")
        if (self.n_steps is None) == (self.t_end is None):
            raise ValueError("give exactly one of n_steps and t_end")
        if self.segments is not None:
            self._check_segments()
        if self.n_steps is not None:
            if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1:
                raise ValueError(f"n_steps must be an integer >= 1, got {self.n_steps!r}")
        elif self.t_end == "auto":
            if not self.system_class.AUTO_T_END:
                raise ValueError(f"t_end = \"auto\" is not defined for the {self.system} system; give a number")
        else:
            t_end = _finite("t_end", self.t_end)
            if t_end <= 0:
                raise ValueError(f"t_end = {self.t_end!r} must be > 0")
            ratio = t_end / dt
            if ratio < 1e15 and abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ValueError(f"t_end = {t_end!r} is not a whole number of steps dt = {dt!r}; "
                                 "adjust one or give n_steps")
        self._check_size()

    def _check_segments(self) -> None:
        seg = self.segments
        if not isinstance(seg, Mapping) or set(seg) != {"start", "spacing"}:
            raise ValueError(f"segments must be a table {{start = T0, spacing = S}} (times along the orbit), got {seg!r}")
        for name, low in (("start", 0.0), ("spacing", self.dt)):
            value = _finite(f"segments.{name}", seg[name])
            steps = value / self.dt
            if value < low or abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
                raise ValueError(f"segments.{name} = {value!r} must be a whole number of steps dt = {self.dt!r}, "
                                 f"at least {low:g}")
        if self.params.sample(1, self.seed)[0].is_driven:
            raise ValueError(f"segments of one orbit need an autonomous system; the {self.system} system is driven "
                             "(its drive depends on the absolute time): drop segments")
        if self.t_end == "auto":
            raise ValueError("segments need a fixed length: give t_end or n_steps, not \"auto\"")

    def segment_offsets(self) -> np.ndarray:
        """Where each trajectory starts on the orbit, in steps of ``dt`` (segments only), ndarray (n_traj,)."""
        start, spacing = (round(self.segments[k] / self.dt) for k in ("start", "spacing"))
        return start + spacing * np.arange(self.n_traj)

    def _check_size(self) -> None:
        """Refuse, before any work, an ensemble whose arrays cannot fit in memory: the time grid, one batch of at
        least one trajectory with the solver's work arrays (about five series of two components), and the
        sampled parameters and initial states of every trajectory (about 16 numbers each)."""
        if self.known_n_steps is None:
            return  # t_end = "auto": known once the ensemble is sampled; the system bounds it
        steps = float(self.known_n_steps)
        what = (f"the ensemble ({self.n_traj} trajectories of {steps:.4g} times"
                + (f", dt = {self.dt:g} up to t_end = {self.t_end:g}" if self.n_steps is None else "") + ")")
        check_memory(8.0 * (11 * steps + 16 * float(self.n_traj)), what,
                     "use fewer trajectories or steps")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        out = {k: v for k, v in out.items() if v is not None}
        if self.segments is not None:
            out["segments"] = {k: float(v) for k, v in self.segments.items()}
        out["params"] = self.params.to_config()
        return out

    def sample(self) -> tuple[PhysicalSystem, np.ndarray]:
        """The system (one parameter set per trajectory) and the initial states, ndarray (n_traj, n_state)."""
        return self.params.sample(self.n_traj, self.seed)

    @property
    def known_n_steps(self) -> int | None:
        """The number of output times where the config fixes it (None for ``t_end = "auto"``, known only once
        the ensemble is sampled)."""
        if self.n_steps is not None:
            return self.n_steps
        return None if self.t_end == "auto" else round(self.t_end / self.dt) + 1

    def time(self, system: PhysicalSystem | None = None, initial_state=None) -> np.ndarray:
        """The output times, ndarray of shape (n_steps,), starting at 0."""
        n_steps = self.known_n_steps
        if n_steps is None:
            if system is None:
                system, initial_state = self.sample()
            n_steps = math.ceil(system.auto_t_end(initial_state) / self.dt) + 1
        return self.dt * np.arange(n_steps)


ProgressCallback = Callable[[int], None]

#: A reference solution is certified by solving it again with tolerances CERTIFY_LOOSER times looser: the two
#: must agree to CERTIFY_BOUND relative to each trajectory's largest state component (or 1, if smaller). Where
#: they part (a chaotic orbit over many Lyapunov times), the certificate gives the time up to which they agree.
CERTIFY_LOOSER = 100.0
CERTIFY_BOUND = 1e-8


class _Certificate:
    """The reference truth's certificate, accumulated batch by batch."""

    def __init__(self, config: EnsembleConfig, time: np.ndarray) -> None:
        self.config, self.time = config, time
        self.max_difference = 0.0
        self.certified_until = float(time[-1])
        self.drift: dict[str, float] = {}

    def add(self, system: PhysicalSystem, x0: np.ndarray, states: np.ndarray) -> None:
        c = self.config
        loose = solve(system, x0, self.time, method="reference", rtol=c.rtol * CERTIFY_LOOSER,
                      atol=c.atol * CERTIFY_LOOSER)
        scale = np.maximum(1.0, np.abs(states).max(axis=(1, 2)))[:, None]
        diff = np.abs(states - loose).max(axis=-1) / scale  # (n, n_steps)
        self.max_difference = max(self.max_difference, float(diff.max()))
        bad = diff > CERTIFY_BOUND
        if bad.any():
            first = np.where(bad.any(axis=1), bad.argmax(axis=1), self.time.size - 1)
            self.certified_until = min(self.certified_until, float(self.time[max(0, first.min() - 1)]))
        keep = system.conserves_invariants()
        if keep.any():
            for name, f in system.invariants().items():
                value = f(states[keep])
                ref = np.maximum(np.abs(value[:, :1]), 1.0)
                drift = float(np.max(np.abs(value - value[:, :1]) / ref))
                self.drift[name] = max(self.drift.get(name, 0.0), drift)

    def attrs(self) -> dict[str, Any]:
        return {"certificate": {
            "compared_rtol": self.config.rtol * CERTIFY_LOOSER, "compared_atol": self.config.atol * CERTIFY_LOOSER,
            "max_difference": self.max_difference, "bound": CERTIFY_BOUND,
            "certified": self.max_difference <= CERTIFY_BOUND, "certified_until": self.certified_until,
            "invariant_drift": self.drift}}


def _batch_size(time: np.ndarray, x0: np.ndarray, batch_size: int | None) -> int:
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return batch_size
    return max(1, 4_000_000 // (time.size * x0.shape[1]))  # about 32 MB of states per batch


def _batches(config: EnsembleConfig, batch_size: int | None, block: slice | None = None):
    """The sampled ensemble, its times, and a generator solving the trajectories of ``block`` (default: all)
    batch by batch. Batches lie on one grid (multiples of the batch size) whatever the block, so a block
    that starts on the grid is solved exactly as the whole ensemble solves it."""
    system, x0 = config.sample()
    time = config.time(system, x0)
    batch_size = _batch_size(time, x0, batch_size)
    system = system.broadcast(config.n_traj)
    block = block or slice(0, config.n_traj)

    certificate = _Certificate(config, time) if config.method == "reference" else None
    if config.segments is not None:
        system, x0, segments = _segments(config, system, x0, time)

    def solve_batches():
        cuts = [block.start, *range((block.start // batch_size + 1) * batch_size, block.stop, batch_size), block.stop]
        for start, stop in zip(cuts[:-1], cuts[1:]):
            index = slice(start, stop)
            part = system.take(index)
            if config.segments is not None:
                states = segments[index]
            else:
                with np.errstate(all="ignore"):  # an overflow is reported below, naming the trajectory's parameters
                    states = solve(part, x0[index], time, method=config.method, rtol=config.rtol, atol=config.atol)
                _check_finite(part, x0[index], states, time, start)
            if certificate is not None:
                certificate.add(part, x0[index], states)
            drive = part.drive(time) if system.is_driven else None
            yield index, states, drive

    return system, x0, time, solve_batches(), certificate


def _segments(config: EnsembleConfig, system: PhysicalSystem, x0: np.ndarray,
              time: np.ndarray) -> tuple[PhysicalSystem, np.ndarray, np.ndarray]:
    """The orbit from the first draw, solved once from t = 0 by the config's method and cut into its segments:
    the system (the first parameter set, for every trajectory), each segment's first state, and the segments.

    A reference truth is certified segment by segment (each against a looser solve from its own first state):
    every segment is then a true orbit of its start to the bound, while the orbit as a whole, chaotic, is known
    only for a few Lyapunov times."""
    offsets = config.segment_offsets()
    # A segment's length beyond the last: an adaptive integrator clips its final step to the end of the span, and
    # a point read inside that step would depend on where the span ends. Past the margin, every point is read
    # from unclipped steps, so two ensembles of the same orbit (training and test stretches) agree where they
    # overlap, whatever their lengths.
    full = config.dt * np.arange(offsets[-1] + 2 * max(time.size, 2))
    one = system.take(slice(0, 1))
    with np.errstate(all="ignore"):
        orbit = solve(one, x0[:1], full, method=config.method, rtol=config.rtol, atol=config.atol)
    _check_finite(one, x0[:1], orbit, full, 0)
    segments = orbit[0][offsets[:, None] + np.arange(time.size)]
    system = one.broadcast(config.n_traj)
    return system, segments[:, 0].copy(), segments


def _check_finite(part: PhysicalSystem, x0: np.ndarray, states: np.ndarray, time: np.ndarray, start: int) -> None:
    """Refuse an ensemble whose solution is not finite (parameters beyond double precision's range), naming
    the first such trajectory's parameters: the largest in magnitude first, the likely culprit."""
    found = first_nonfinite(states)
    if found is None:
        return
    _, i, step = found
    values = {k: np.asarray(v)[i] for k, v in part.params().items()}
    values.update(x0=x0[i])
    size = {k: float(np.max(np.abs(v))) if np.size(v) else 0.0 for k, v in values.items()}

    def text(v) -> str:
        v = np.asarray(v, dtype=float)
        return f"{float(v):.4g}" if v.ndim == 0 else "[" + ", ".join(f"{x:.4g}" for x in v.ravel()) + "]"

    named = ", ".join(f"{k} = {text(values[k])}" for k in sorted(values, key=lambda k: -size[k]))
    raise ValueError(f"the solution is not finite for trajectory {start + i}"
                     f" from t = {time[step]:g}, with {named}; these values overflow double "
                     "precision: choose smaller magnitudes (and dt, t_end to match)")


def _provenance(config: EnsembleConfig, system, x0: np.ndarray) -> tuple[dict, dict]:
    params = {**system.params(), **config.params.initial_params(x0, system)}
    truth = {"exact": "exact", "reference": "reference"}.get(config.method, "numerical")
    attrs: dict[str, Any] = {"seed": config.seed, "config": config.to_dict(), "truth": truth}
    if config.method == "reference":
        attrs.update(rtol=config.rtol, atol=config.atol, integrator=f"scipy {system.reference_method()}")
    return params, attrs


def generate(config: EnsembleConfig, *, progress: ProgressCallback | None = None,
             batch_size: int | None = None) -> Trajectories:
    """Sample and solve the ensemble in memory."""
    system, x0, time, batches, certificate = _batches(config, batch_size)
    states = np.empty((config.n_traj, time.size, system.n_state))
    drive = np.empty((config.n_traj, time.size, len(system.drive_names()))) if system.is_driven else None
    for index, s, d in batches:
        states[index] = s
        if drive is not None:
            drive[index] = d
        if progress:
            progress(index.stop - index.start)
    params, attrs = _provenance(config, system, x0)
    if certificate is not None:
        attrs.update(certificate.attrs())
    return Trajectories(system=config.system, time=time, states=states, params=params,
                        state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                        method=config.method, drive=drive,
                        drive_names=system.drive_names() if system.is_driven else (), attrs=attrs)


def simulate_to_file(config: EnsembleConfig, path, *, progress: ProgressCallback | None = None,
                     batch_size: int | None = None):
    """Sample, solve and write the ensemble batch by batch (bounded memory); the file appears only when complete."""
    check_output_path(path)
    system, x0, time, batches, certificate = _batches(config, batch_size)
    params, attrs = _provenance(config, system, x0)
    with TrajectoryWriter(path, system=config.system, time=time, n_traj=config.n_traj,
                          state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                          method=config.method, drive_names=system.drive_names() if system.is_driven else (),
                          attrs=attrs) as writer:
        writer.write_params(params)
        for index, states, drive in batches:
            writer.write(index, states, drive)
            if progress:
                progress(index.stop - index.start)
        if certificate is not None:
            writer.set_attrs(**certificate.attrs())
    return writer.path


def shard_blocks(config: EnsembleConfig, n_shards: int, *, batch_size: int | None = None) -> list[slice]:
    """Split the ensemble's trajectories into ``n_shards`` contiguous blocks of near-equal size.

    The blocks are what :func:`simulate_shard` solves, so that the shards together hold exactly the data of
    one unsharded run. The reference integrator solves each batch as one system (its step sizes depend on
    the batch), so for it the blocks start on the batch grid, and there can be no more shards than batches.
    """
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"the number of shards must be a positive integer, got {n_shards!r}")
    n = config.n_traj
    grid = 1
    if config.method == "reference":
        system, x0 = config.sample()
        grid = _batch_size(config.time(system, x0), x0, batch_size)
    n_units = math.ceil(n / grid)
    if n_shards > n_units:
        unit = "trajectories" if grid == 1 else f"batches of {grid} trajectories (method reference)"
        raise ValueError(f"{n_shards} shards asked of an ensemble of {n_units} {unit}; ask for at most {n_units}")
    cuts = [min(n, round(i * n_units / n_shards) * grid) for i in range(n_shards + 1)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def shard_path(path, index: int, n_shards: int) -> Path:
    """Where shard ``index`` of the sharded file ``path`` lives: ``NAME.shards/NNN-of-MMM.h5`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.shards") / f"{index:03d}-of-{n_shards:03d}.h5"


def simulate_shard(config: EnsembleConfig, path, block: slice, *, batch_size: int | None = None) -> Path:
    """Solve the trajectories ``block`` of the ensemble and write them as a trajectory file of their own.

    Parameters and initial states are drawn for the whole ensemble (cheap, and the same draws as one
    unsharded run) and the block's part is kept. The file records its block in the ``shard`` attribute; a
    shard that already exists for the same config and block is kept as it is (a re-run resumes).
    """
    path = Path(path)
    shard = {"start": block.start, "stop": block.stop, "n_traj": config.n_traj}
    if path.is_file():
        with h5py.File(path, "r") as f:
            if (json.loads(f.attrs.get("config", "null")) == json.loads(json.dumps(config.to_dict()))
                    and json.loads(f.attrs.get("shard", "null")) == shard):
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    system, x0, time, batches, certificate = _batches(config, batch_size, block)
    params, attrs = _provenance(config, system, x0)
    with TrajectoryWriter(path, system=config.system, time=time, n_traj=block.stop - block.start,
                          state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                          method=config.method, drive_names=system.drive_names() if system.is_driven else (),
                          attrs={**attrs, "shard": shard}) as writer:
        writer.write_params({k: v[block] for k, v in params.items()})
        for index, states, drive in batches:
            local = slice(index.start - block.start, index.stop - block.start)
            writer.write(local, states, drive)
        if certificate is not None:
            writer.set_attrs(**certificate.attrs())
    return writer.path


def join_shards(config: EnsembleConfig, path, shards: list, blocks: list[slice]) -> Path:
    """Write ``path``: the ensemble as one trajectory file whose series are virtual datasets over ``shards``
    (files written by :func:`simulate_shard` for ``blocks``), with the whole ensemble's parameters."""
    path = check_output_path(path)
    system, x0 = config.sample()
    time = config.time(system, x0)
    if config.segments is not None:  # the initial states are the segments' first states
        system, x0, _ = _segments(config, system.broadcast(config.n_traj), x0, time)
    params, attrs = _provenance(config, system.broadcast(config.n_traj), x0)
    sources = [(os.path.relpath(Path(s).resolve(), path.resolve().parent), b) for s, b in zip(shards, blocks)]
    with TrajectoryWriter(path, system=config.system, time=time, n_traj=config.n_traj,
                          state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                          method=config.method, drive_names=system.drive_names() if system.is_driven else (),
                          attrs={**attrs, "shards": len(shards)}, sources=sources) as writer:
        writer.write_params(params)
    return writer.path


def system_from_params(system: str, params: Mapping[str, np.ndarray]) -> PhysicalSystem:
    """Rebuild the system (one parameter set per trajectory) from a trajectory file's ``/params``."""
    return get_system(system).from_params(params)
