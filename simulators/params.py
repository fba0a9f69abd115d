"""Ensemble parameters: how each parameter of a system is set across an ensemble, drawn from explicit seeds.

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

A system declares its ensemble parameters as a subclass of :class:`EnsembleParams`: a frozen dataclass whose
fields are :class:`ParamSpec` (or tuples of them, for the terms of a sum), validated in ``__post_init__``.
The base class parses them from a config table, writes them back, and samples them; a subclass says which
fields are the initial state (``INITIAL_STATE``) and how the drawn values build the system (``build``), or
overrides :meth:`EnsembleParams.sample` when its draws are not one value per parameter.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Mapping

import numpy as np

__all__ = ["SPEC_KINDS", "EnsembleParams", "ParamSpec", "check_range", "finite_number", "fixed", "param_rng",
           "reject_unknown", "uniform"]

SPEC_KINDS = ("uniform", "loguniform", "choice", "values", "linspace")


def param_rng(seed: int, name: str) -> np.random.Generator:
    """An independent stream for parameter ``name`` (CRC32 of the name: stable across runs and platforms)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is set across the ensemble (see the module docstring)."""

    kind: str  # "fixed" or one of SPEC_KINDS
    values: tuple[float, ...]

    @classmethod
    def parse(cls, name: str, spec: Any) -> ParamSpec:
        if isinstance(spec, ParamSpec):
            return spec
        if isinstance(spec, bool):
            raise TypeError(f"{name} must be a number or a spec table, got {spec!r}")
        if isinstance(spec, (int, float)):
            return cls("fixed", (finite_number(name, spec),))
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise TypeError(
                f"{name} must be a number or a one-key table such as {{uniform = [0.0, 1.0]}} "
                f"(keys: {', '.join(SPEC_KINDS)}), got {spec!r}")
        (kind, args), = spec.items()
        if kind not in SPEC_KINDS:
            raise ValueError(f"{name}: unknown spec '{kind}'; use one of {', '.join(SPEC_KINDS)}")
        if not isinstance(args, (list, tuple)) or not args:
            raise TypeError(f"{name}.{kind} must be a non-empty list of numbers, got {args!r}")
        vals = tuple(finite_number(f"{name}.{kind}", a) for a in args)
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
        rng = param_rng(seed, name)
        if self.kind == "uniform":
            return rng.uniform(v[0], v[1], n)
        if self.kind == "loguniform":
            return np.exp(rng.uniform(math.log(v[0]), math.log(v[1]), n))
        return rng.choice(np.array(v), n)


def finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} = {value!r} is not finite; give a finite number")
    return float(value)


def reject_unknown(section: str, given: Mapping[str, Any], allowed: list[str]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} in {section}: {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed)}")


def check_range(name: str, spec: ParamSpec, *, low: float, strict: bool = False) -> None:
    lo = spec.bounds[0]
    if lo < low or (strict and lo == low):
        rel = ">" if strict else ">="
        what = "is out of range" if spec.kind == "fixed" else f"reaches {lo!r}"
        raise ValueError(f"{name} = {spec.to_config()!r} {what}; it must be {rel} {low:g}")


def fixed(value: float) -> ParamSpec:
    """The spec of a parameter with one value for every trajectory (for dataclass defaults)."""
    return ParamSpec("fixed", (float(value),))


def uniform(low: float, high: float) -> ParamSpec:
    """The spec of a parameter drawn uniformly in [low, high) (for dataclass defaults)."""
    return ParamSpec("uniform", (float(low), float(high)))


@dataclass(frozen=True, kw_only=True)
class EnsembleParams:
    """The parameter specs of one system's ensembles (subclass it beside the system; see the module docstring).

    Subclasses set ``INITIAL_STATE`` (the fields that are initial-state components, in state order) and
    ``TERMS`` (fields given per term of a sum, as tuples of specs, e.g. the drive terms), and implement
    :meth:`build`. Fields that are neither are the system's parameters, passed to :meth:`build` by name.
    """

    INITIAL_STATE: ClassVar[tuple[str, ...]] = ()
    TERMS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], system: str = "this") -> EnsembleParams:
        """From a config table; unknown names and bad specs are rejected, naming the parameter."""
        names = [f.name for f in fields(cls)]
        reject_unknown(f"[params] of {'an' if system[:1] in 'aeiou' else 'a'} {system} ensemble", d, names)
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            if f.name in cls.TERMS:
                specs = value if isinstance(value, (list, tuple)) else [value]
                kw[f.name] = tuple(ParamSpec.parse(f"{f.name}[{k}]" if len(specs) > 1 else f.name, s)
                                   for k, s in enumerate(specs))
            elif isinstance(f.default, ParamSpec):
                kw[f.name] = ParamSpec.parse(f.name, value)
            else:
                kw[f.name] = value
        return cls(**kw)

    def to_config(self) -> dict[str, Any]:
        """The config table these specs came from (a term list of one is written as that one spec)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and v and isinstance(v[0], ParamSpec):
                out[f.name] = v[0].to_config() if len(v) == 1 else [s.to_config() for s in v]
            elif isinstance(v, ParamSpec):
                out[f.name] = v.to_config()
            else:
                out[f.name] = v
        return out

    @classmethod
    def spec_names(cls) -> tuple[str, ...]:
        """The fields that are per-trajectory specs (what a file records per trajectory and a study can group by)."""
        return tuple(f.name for f in fields(cls) if f.name in cls.TERMS or isinstance(f.default, ParamSpec))

    def draw(self, n_traj: int, seed: int) -> dict[str, np.ndarray]:
        """One value per trajectory of every spec: ``(n_traj,)``, or ``(n_traj, n_terms)`` for term fields."""
        n_terms = max((len(getattr(self, n)) for n in self.TERMS), default=1)
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self.TERMS:
                specs = v * n_terms if len(v) == 1 else v
                out[f.name] = np.stack([s.sample(n_traj, seed, f"{f.name}[{k}]") for k, s in enumerate(specs)], axis=1)
            elif isinstance(v, ParamSpec):
                out[f.name] = v.sample(n_traj, seed, f.name)
        return out

    def sample(self, n_traj: int, seed: int):
        """The system (one parameter set per trajectory) and the initial states, ndarray (n_traj, n_state)."""
        values = self.draw(n_traj, seed)
        x0 = np.stack([values.pop(name) for name in self.INITIAL_STATE], axis=1)
        return self.build(values), x0

    def build(self, values: Mapping[str, np.ndarray]):
        """The system from the drawn parameter values (every field but the initial state)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build() or sample()")

    def initial_params(self, x0: np.ndarray, system=None) -> dict[str, np.ndarray]:
        """What a trajectory file records of the initial states under ``/params`` (default: one per field);
        ``system`` is the sampled system, for records that need its parameters."""
        return {name: x0[:, i].copy() for i, name in enumerate(self.INITIAL_STATE)}
