"""Ensembles: parameters and initial states drawn from explicit seeds, solved in batches, written to HDF5.

An :class:`EnsembleConfig` is what a ``[simulate]``-style TOML file deserialises into, what
``physrnn simulate`` builds from its flags, and what a trajectory file records (as JSON) in its ``config``
attribute, so that any file can be regenerated from itself.

Each parameter is given by a *spec*:

=============================  ==========================================================
``0.2``                        the same value for every trajectory
``{uniform = [lo, hi]}``       drawn uniformly in [lo, hi)
``{loguniform = [lo, hi]}``    log-uniform in [lo, hi), lo > 0
``{choice = [a, b, ...]}``     drawn from the list
``{values = [a, b, ...]}``     exactly these, one per trajectory (length n_traj)
``{linspace = [lo, hi]}``      evenly spaced from lo to hi over the trajectories
=============================  ==========================================================

Every random spec draws from its own stream, keyed by the seed and the parameter's name, so adding a
parameter to a config does not change the values drawn for the others.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from .eigen import EigenFlow, check_symmetric, convergence_time, random_symmetric
from .integrate import METHODS, solve
from .oscillator import LinearOscillator
from .trajectory_file import Trajectories, TrajectoryWriter, check_output_path

__all__ = ["EnsembleConfig", "EigenParams", "OscillatorParams", "ParamSpec", "SYSTEMS", "generate", "join_shards",
           "shard_blocks", "shard_path", "simulate_shard", "simulate_to_file", "system_from_params"]

SYSTEMS = ("oscillator", "eigen")
_KINDS = ("uniform", "loguniform", "choice", "values", "linspace")


def _rng(seed: int, name: str) -> np.random.Generator:
    """An independent stream for parameter ``name`` (CRC32 of the name: stable across runs and platforms)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is set across the ensemble (see the module docstring)."""

    kind: str  # "fixed" or one of _KINDS
    values: tuple[float, ...]

    @classmethod
    def parse(cls, name: str, spec: Any) -> ParamSpec:
        if isinstance(spec, ParamSpec):
            return spec
        if isinstance(spec, bool):
            raise TypeError(f"{name} must be a number or a spec table, got {spec!r}")
        if isinstance(spec, (int, float)):
            return cls("fixed", (_finite(name, spec),))
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise TypeError(
                f"{name} must be a number or a one-key table such as {{uniform = [0.0, 1.0]}} "
                f"(keys: {', '.join(_KINDS)}), got {spec!r}")
        (kind, args), = spec.items()
        if kind not in _KINDS:
            raise ValueError(f"{name}: unknown spec '{kind}'; use one of {', '.join(_KINDS)}")
        if not isinstance(args, (list, tuple)) or not args:
            raise TypeError(f"{name}.{kind} must be a non-empty list of numbers, got {args!r}")
        vals = tuple(_finite(f"{name}.{kind}", a) for a in args)
        if kind in ("uniform", "loguniform", "linspace"):
            if len(vals) != 2:
                raise ValueError(f"{name}.{kind} must be [low, high], got {list(vals)}")
            if vals[1] < vals[0]:
                raise ValueError(f"{name}.{kind} = {list(vals)} has high < low; give [low, high]")
            if kind == "loguniform" and vals[0] <= 0:
                raise ValueError(f"{name}.loguniform needs low > 0, got {vals[0]!r}")
        return cls(kind, vals)

    def to_config(self) -> Any:
        return self.values[0] if self.kind == "fixed" else {self.kind: list(self.values)}

    @property
    def bounds(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    def sample(self, n: int, seed: int, name: str) -> np.ndarray:
        """One value per trajectory, ndarray of shape (n,)."""
        v = self.values
        if self.kind == "fixed":
            return np.full(n, v[0])
        if self.kind == "linspace":
            return np.linspace(v[0], v[1], n)
        if self.kind == "values":
            if len(v) != n:
                raise ValueError(f"{name}.values has {len(v)} entries but n_traj = {n}; give one per trajectory")
            return np.array(v)
        rng = _rng(seed, name)
        if self.kind == "uniform":
            return rng.uniform(v[0], v[1], n)
        if self.kind == "loguniform":
            return np.exp(rng.uniform(math.log(v[0]), math.log(v[1]), n))
        return rng.choice(np.array(v), n)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} = {value!r} is not finite; give a finite number")
    return float(value)


def _reject_unknown(section: str, given: Mapping[str, Any], allowed: list[str]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} in {section}: {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed)}")


def _check_range(name: str, spec: ParamSpec, *, low: float, strict: bool = False) -> None:
    lo = spec.bounds[0]
    if lo < low or (strict and lo == low):
        rel = ">" if strict else ">="
        what = "is out of range" if spec.kind == "fixed" else f"reaches {lo!r}"
        raise ValueError(f"{name} = {spec.to_config()!r} {what}; it must be {rel} {low:g}")


@dataclass(frozen=True, kw_only=True)
class OscillatorParams:
    """Parameter specs of an oscillator ensemble; drive specs may be a tuple, one spec per drive term."""

    damping: ParamSpec = ParamSpec("fixed", (0.0,))
    natural_frequency: ParamSpec = ParamSpec("fixed", (1.0,))
    drive_amplitude: tuple[ParamSpec, ...] = (ParamSpec("fixed", (0.0,)),)
    drive_frequency: tuple[ParamSpec, ...] = (ParamSpec("fixed", (0.0,)),)
    drive_phase: tuple[ParamSpec, ...] = (ParamSpec("fixed", (0.0,)),)
    x0: ParamSpec = ParamSpec("uniform", (-1.0, 1.0))
    v0: ParamSpec = ParamSpec("uniform", (-1.0, 1.0))

    _DRIVE = ("drive_amplitude", "drive_frequency", "drive_phase")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OscillatorParams:
        names = [f.name for f in fields(cls)]
        _reject_unknown("[params] of an oscillator ensemble", d, names)
        kw: dict[str, Any] = {}
        for name in names:
            if name not in d:
                continue
            if name in cls._DRIVE:
                specs = d[name] if isinstance(d[name], (list, tuple)) else [d[name]]
                kw[name] = tuple(ParamSpec.parse(f"{name}[{k}]" if len(specs) > 1 else name, s)
                                 for k, s in enumerate(specs))
            else:
                kw[name] = ParamSpec.parse(name, d[name])
        return cls(**kw)

    def __post_init__(self) -> None:
        _check_range("damping", self.damping, low=0.0)
        _check_range("natural_frequency", self.natural_frequency, low=0.0, strict=True)
        for spec in self.drive_frequency:
            _check_range("drive_frequency", spec, low=0.0)
        counts = {len(getattr(self, n)) for n in self._DRIVE} - {1}
        if len(counts) > 1 or any(len(getattr(self, n)) == 0 for n in self._DRIVE):
            raise ValueError("drive_amplitude, drive_frequency and drive_phase must each give one spec or the "
                             f"same number of drive terms, got {[len(getattr(self, n)) for n in self._DRIVE]}")

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = [s.to_config() for s in v] if isinstance(v, tuple) else v.to_config()
            if isinstance(v, tuple) and len(v) == 1:
                out[f.name] = out[f.name][0]
        return out

    def sample(self, n_traj: int, seed: int) -> tuple[LinearOscillator, np.ndarray]:
        n_terms = max(len(getattr(self, n)) for n in self._DRIVE)
        drive = {}
        for name in self._DRIVE:
            specs = getattr(self, name)
            specs = specs * n_terms if len(specs) == 1 else specs
            drive[name] = np.stack([s.sample(n_traj, seed, f"{name}[{k}]") for k, s in enumerate(specs)], axis=1)
        system = LinearOscillator(damping=self.damping.sample(n_traj, seed, "damping"),
                                  natural_frequency=self.natural_frequency.sample(n_traj, seed, "natural_frequency"),
                                  **drive)
        x0 = np.stack([self.x0.sample(n_traj, seed, "x0"), self.v0.sample(n_traj, seed, "v0")], axis=1)
        return system, x0


@dataclass(frozen=True, kw_only=True)
class EigenParams:
    """Specs of an eigen-flow ensemble.

    ``matrix`` is ``"random"`` (Gaussian orthogonal ensemble, see :func:`~simulators.random_symmetric`) or an
    explicit symmetric ``size`` × ``size`` list of lists; ``shared_matrix`` gives every trajectory the same
    matrix (many starts of one problem) instead of one matrix each. ``matrix_seed`` draws the random matrix
    from its own seed rather than the ensemble's, so two ensembles (say, training and test starts) can share
    one problem. ``negate`` flows with −A instead, whose limit is the eigenvector of λmin(A); the files then
    hold −A as the matrix. Starts point in uniformly random directions with norm ``initial_norm``.
    """

    size: int = 6
    matrix: str | tuple[tuple[float, ...], ...] = "random"
    shared_matrix: bool = True
    matrix_seed: int | None = None
    negate: bool = False
    initial_norm: ParamSpec = ParamSpec("fixed", (1.0,))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EigenParams:
        names = [f.name for f in fields(cls)]
        _reject_unknown("[params] of an eigen ensemble", d, names)
        kw = dict(d)
        if "initial_norm" in kw:
            kw["initial_norm"] = ParamSpec.parse("initial_norm", kw["initial_norm"])
        if isinstance(kw.get("matrix"), list):
            kw["matrix"] = tuple(tuple(row) if isinstance(row, list) else row for row in kw["matrix"])
            kw.setdefault("size", len(kw["matrix"]))
        return cls(**kw)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive integer, got {self.size!r}")
        for name in ("shared_matrix", "negate"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.matrix_seed is not None:
            if isinstance(self.matrix_seed, bool) or not isinstance(self.matrix_seed, int) or self.matrix_seed < 0:
                raise ValueError(f"matrix_seed must be an integer >= 0, got {self.matrix_seed!r}")
            if not isinstance(self.matrix, str):
                raise ValueError("matrix_seed is for a random matrix; drop it or set matrix = \"random\"")
        if isinstance(self.matrix, str):
            if self.matrix != "random":
                raise ValueError(f"matrix must be \"random\" or a list of rows, got {self.matrix!r}")
        else:
            a = check_symmetric(self.matrix)
            if a.shape[-1] != self.size:
                raise ValueError(f"matrix is {a.shape[-1]} x {a.shape[-1]} but size = {self.size}")
        _check_range("initial_norm", self.initial_norm, low=0.0, strict=True)

    def to_config(self) -> dict[str, Any]:
        matrix = self.matrix if isinstance(self.matrix, str) else [list(r) for r in self.matrix]
        out = {"size": self.size, "matrix": matrix, "shared_matrix": self.shared_matrix,
               "initial_norm": self.initial_norm.to_config()}
        if self.matrix_seed is not None:
            out["matrix_seed"] = self.matrix_seed
        if self.negate:
            out["negate"] = True
        return out  # the defaults left out, so configs written before these options keep their cache keys

    def sample(self, n_traj: int, seed: int) -> tuple[EigenFlow, np.ndarray]:
        if isinstance(self.matrix, str):
            n_mat = None if self.shared_matrix else n_traj
            matrix_seed = seed if self.matrix_seed is None else self.matrix_seed
            a = random_symmetric(self.size, seed=_rng(matrix_seed, "matrix"), n_matrices=n_mat)
        else:
            a = np.array(self.matrix, dtype=float)
        if self.negate:
            a = -a
        direction = _rng(seed, "x0").standard_normal((n_traj, self.size))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        x0 = direction * self.initial_norm.sample(n_traj, seed, "initial_norm")[:, None]
        return EigenFlow(matrix=a), x0


_PARAMS = {"oscillator": OscillatorParams, "eigen": EigenParams}


@dataclass(frozen=True, kw_only=True)
class EnsembleConfig:
    """Everything that determines an ensemble file, validated at construction.

    Parameters
    ----------
    system : {"oscillator", "eigen"}
    n_traj : int
        Number of trajectories.
    dt : float
        Output time step (> 0).
    n_steps : int, optional
        Number of output times, including t = 0. Give this or ``t_end``.
    t_end : float or "auto", optional
        Final time, a whole number of ``dt``. ``"auto"`` (eigen flow only): the latest time at which the
        slowest trajectory's Rayleigh quotient is within 1e-10 of λmax (:func:`~simulators.convergence_time`),
        rounded up to a whole step.
    seed : int
        Root of every random draw.
    method : {"exact", "euler", "rk4", "reference"}
    rtol, atol : float
        Tolerances of the reference integrator.
    params : OscillatorParams or EigenParams
    """

    system: str
    n_traj: int
    dt: float
    n_steps: int | None = None
    t_end: float | str | None = None
    seed: int = 0
    method: str = "exact"
    rtol: float = 1e-12
    atol: float = 1e-14
    params: OscillatorParams | EigenParams = field(default=None)  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnsembleConfig:
        """From a parsed TOML/JSON table; unknown keys and wrong types are rejected, naming the key."""
        allowed = [f.name for f in fields(cls)]
        _reject_unknown("the ensemble config", d, allowed)
        if "system" not in d:
            raise ValueError(f"the ensemble config has no 'system'; set system = one of {', '.join(SYSTEMS)}")
        kw = dict(d)
        system = kw["system"]
        if system not in SYSTEMS:
            raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
        params = kw.pop("params", {})
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a table, got {params!r}")
        return cls(**kw, params=_PARAMS[system].from_dict(params))

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ValueError(f"unknown system {self.system!r}; choose one of {', '.join(SYSTEMS)}")
        if self.params is None:
            object.__setattr__(self, "params", _PARAMS[self.system]())
        if not isinstance(self.params, _PARAMS[self.system]):
            raise TypeError(f"params of a {self.system} ensemble must be {_PARAMS[self.system].__name__}")
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
        if self.n_steps is not None:
            if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1:
                raise ValueError(f"n_steps must be an integer >= 1, got {self.n_steps!r}")
        elif self.t_end == "auto":
            if self.system != "eigen":
                raise ValueError("t_end = \"auto\" is for the eigen flow; give a number for the oscillator")
        else:
            t_end = _finite("t_end", self.t_end)
            if t_end <= 0:
                raise ValueError(f"t_end = {self.t_end!r} must be > 0")
            ratio = t_end / dt
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                raise ValueError(f"t_end = {t_end!r} is not a whole number of steps dt = {dt!r}; "
                                 "adjust one or give n_steps")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        out = {k: v for k, v in out.items() if v is not None}
        out["params"] = self.params.to_config()
        return out

    def sample(self) -> tuple[LinearOscillator | EigenFlow, np.ndarray]:
        """The system (one parameter set per trajectory) and the initial states, ndarray (n_traj, n_state)."""
        return self.params.sample(self.n_traj, self.seed)

    def time(self, system: LinearOscillator | EigenFlow | None = None, initial_state=None) -> np.ndarray:
        """The output times, ndarray of shape (n_steps,), starting at 0."""
        if self.n_steps is not None:
            n_steps = self.n_steps
        elif self.t_end == "auto":
            if system is None:
                system, initial_state = self.sample()
            norms = np.linalg.norm(initial_state, axis=1)
            horizon = float(np.max(convergence_time(system.matrix, initial_norm=norms)))
            if not math.isfinite(horizon):
                raise ValueError("t_end = \"auto\" needs a gap between the top two eigenvalues; a matrix has a "
                                 "degenerate top eigenvalue, so give t_end or n_steps")
            n_steps = math.ceil(horizon / self.dt) + 1
        else:
            n_steps = round(self.t_end / self.dt) + 1
        return self.dt * np.arange(n_steps)


ProgressCallback = Callable[[int], None]


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

    def solve_batches():
        cuts = [block.start, *range((block.start // batch_size + 1) * batch_size, block.stop, batch_size), block.stop]
        for start, stop in zip(cuts[:-1], cuts[1:]):
            index = slice(start, stop)
            part = system.take(index)
            states = solve(part, x0[index], time, method=config.method, rtol=config.rtol, atol=config.atol)
            drive = part.drive(time) if system.is_driven else None
            yield index, states, drive

    return system, x0, time, solve_batches()


def _provenance(config: EnsembleConfig, system, x0: np.ndarray) -> tuple[dict, dict]:
    params = dict(system.params())
    if config.system == "oscillator":
        params["x0"], params["v0"] = x0[:, 0].copy(), x0[:, 1].copy()
    else:
        params["x0"] = x0.copy()
        params["initial_norm"] = np.linalg.norm(x0, axis=1)
    attrs: dict[str, Any] = {"seed": config.seed, "config": config.to_dict()}
    if config.method == "reference":
        attrs.update(rtol=config.rtol, atol=config.atol, integrator="scipy DOP853")
    return params, attrs


def generate(config: EnsembleConfig, *, progress: ProgressCallback | None = None,
             batch_size: int | None = None) -> Trajectories:
    """Sample and solve the ensemble in memory."""
    system, x0, time, batches = _batches(config, batch_size)
    states = np.empty((config.n_traj, time.size, system.n_state))
    drive = np.empty((config.n_traj, time.size, len(system.drive_names()))) if system.is_driven else None
    for index, s, d in batches:
        states[index] = s
        if drive is not None:
            drive[index] = d
        if progress:
            progress(index.stop - index.start)
    params, attrs = _provenance(config, system, x0)
    return Trajectories(system=config.system, time=time, states=states, params=params,
                        state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                        method=config.method, drive=drive,
                        drive_names=system.drive_names() if system.is_driven else (), attrs=attrs)


def simulate_to_file(config: EnsembleConfig, path, *, progress: ProgressCallback | None = None,
                     batch_size: int | None = None):
    """Sample, solve and write the ensemble batch by batch (bounded memory); the file appears only when complete."""
    check_output_path(path)
    system, x0, time, batches = _batches(config, batch_size)
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
    system, x0, time, batches = _batches(config, batch_size, block)
    params, attrs = _provenance(config, system, x0)
    with TrajectoryWriter(path, system=config.system, time=time, n_traj=block.stop - block.start,
                          state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                          method=config.method, drive_names=system.drive_names() if system.is_driven else (),
                          attrs={**attrs, "shard": shard}) as writer:
        writer.write_params({k: v[block] for k, v in params.items()})
        for index, states, drive in batches:
            local = slice(index.start - block.start, index.stop - block.start)
            writer.write(local, states, drive)
    return writer.path


def join_shards(config: EnsembleConfig, path, shards: list, blocks: list[slice]) -> Path:
    """Write ``path``: the ensemble as one trajectory file whose series are virtual datasets over ``shards``
    (files written by :func:`simulate_shard` for ``blocks``), with the whole ensemble's parameters."""
    path = check_output_path(path)
    system, x0 = config.sample()
    time = config.time(system, x0)
    params, attrs = _provenance(config, system.broadcast(config.n_traj), x0)
    sources = [(os.path.relpath(Path(s).resolve(), path.resolve().parent), b) for s, b in zip(shards, blocks)]
    with TrajectoryWriter(path, system=config.system, time=time, n_traj=config.n_traj,
                          state_names=tuple(system.state_names), state_units=tuple(system.state_units),
                          method=config.method, drive_names=system.drive_names() if system.is_driven else (),
                          attrs={**attrs, "shards": len(shards)}, sources=sources) as writer:
        writer.write_params(params)
    return writer.path


def system_from_params(system: str, params: Mapping[str, np.ndarray]) -> LinearOscillator | EigenFlow:
    """Rebuild the system (one parameter set per trajectory) from a trajectory file's ``/params``."""
    if system == "oscillator":
        return LinearOscillator(**{k: params[k] for k in ("damping", "natural_frequency", "drive_amplitude",
                                                          "drive_frequency", "drive_phase")})
    if system == "eigen":
        return EigenFlow(matrix=params["matrix"])
    raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
