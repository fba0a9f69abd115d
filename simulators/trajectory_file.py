"""Trajectory files: a documented, versioned HDF5 layout (schema ``physrnn.trajectories``), see data/README.md.

Files are written chunked and compressed (shuffle + gzip), with dimensions labelled by HDF5 dimension
scales, to a temporary name in the target folder that is renamed only once the file is complete, so an
interrupted or failed run never leaves a half-written file under the requested name.

A sharded ensemble (``physrnn simulate --shards N``) is N ordinary trajectory files, one per block of
trajectories, and one file of the same layout whose ``/states`` and ``/drive`` are HDF5 *virtual datasets*
mapping those blocks; plain ``h5py`` and :func:`read_trajectories` read it as one ensemble. The shard files
are referenced by paths relative to that file, so the folder can be moved as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "TrajectoryFileError",
    "Trajectories",
    "TrajectoryWriter",
    "check_output_path",
    "file_sha256",
    "fingerprint",
    "first_nonfinite",
    "temporary_path",
    "nonfinite_problem",
    "read_trajectories",
    "software_versions",
    "write_trajectories",
]

SCHEMA = "physrnn.trajectories"
#: Version history: 1 — first layout (this one).
SCHEMA_VERSION = 1
_COMPRESSION = dict(compression="gzip", compression_opts=4, shuffle=True)


#: Names of the axes after the first (trajectory) of the parameters that have more: dimension scales in the
#: file, so netCDF-4 tools and xarray see every axis named. A parameter not listed gets ``NAME_dimK``.
PARAM_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "drive_amplitude": ("term",), "drive_frequency": ("term",), "drive_phase": ("term",),
    "matrix": ("row", "column"), "eigenvectors": ("row", "column"), "eigenvalues": ("eigenvalue",),
}


class TrajectoryFileError(ValueError):
    """A trajectory file is missing, unreadable, truncated, foreign, of an unsupported schema, or holds values
    that are not finite where the schema allows none."""


#: A rollout file flags trajectories that diverged in ``/params/diverged_at`` (the first step of divergence, −1
#: if none): their states are NaN from that step on, by design. Everywhere else every value must be finite.
DIVERGED_AT = "diverged_at"


def first_nonfinite(series: np.ndarray, diverged_at: np.ndarray | None = None) -> tuple[int, int, int] | None:
    """Where ``series`` (n_traj, n_steps, n) holds NaN or inf outside the steps flagged as diverged: (how many
    trajectories, the first of them, its first such step), or None if nowhere."""
    bad = ~np.isfinite(np.asarray(series)).all(axis=-1)  # (n_traj, n_steps)
    if diverged_at is not None:
        flagged = np.asarray(diverged_at)
        flagged = np.where(flagged >= 0, flagged, bad.shape[1])
        bad &= np.arange(bad.shape[1])[None, :] < flagged[:, None]
    rows = bad.any(axis=1)
    if not rows.any():
        return None
    first = int(np.argmax(rows))
    return int(rows.sum()), first, int(np.argmax(bad[first]))


def nonfinite_problem(series: np.ndarray, time: np.ndarray, diverged_at: np.ndarray | None = None,
                      name: str = "states", offset: int = 0) -> str | None:
    """What is not finite in ``series`` (n_traj, n_steps, n) outside the steps flagged as diverged, in words
    (``"states: 3 of 10 trajectories hold NaN or inf, the first (trajectory 4) from t = 0.05"``), or None."""
    found = first_nonfinite(series, diverged_at)
    if found is None:
        return None
    count, first, step = found
    return (f"{name}: {count} of {len(series)} trajectories hold NaN or inf, the first (trajectory "
            f"{first + offset}) from t = {time[step]:g}")


@dataclass(frozen=True, eq=False)
class Trajectories:
    """An ensemble of trajectories on a shared time grid: what a trajectory file holds.

    Attributes
    ----------
    system : str
        ``"oscillator"`` or ``"eigen"``.
    time : ndarray of shape (n_steps,)
    states : ndarray of shape (n_traj, n_steps, n_state)
    params : dict of str to ndarray
        Per-trajectory parameters, each with leading dimension n_traj.
    state_names, state_units : tuple of str
        One per state component.
    drive : ndarray of shape (n_traj, n_steps, n_drive) or None
        Known input at each step; None for free motion.
    drive_names : tuple of str
    method : str
        How the states were computed (``"exact"``, ``"euler"``, ``"rk4"``, ``"reference"``).
    attrs : dict
        Provenance: ``seed``, ``config`` (dict), ``rtol``/``atol`` for the reference integrator, and, once read
        from a file, ``created`` and ``software``.
    """

    system: str
    time: np.ndarray
    states: np.ndarray
    params: Mapping[str, np.ndarray]
    state_names: tuple[str, ...]
    state_units: tuple[str, ...]
    method: str
    drive: np.ndarray | None = None
    drive_names: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_traj(self) -> int:
        return self.states.shape[0]

    @property
    def n_steps(self) -> int:
        return self.states.shape[1]

    @property
    def n_state(self) -> int:
        return self.states.shape[2]

    @property
    def dt(self) -> float:
        """The time step if the grid is uniform (to 1e-9 relative), else NaN."""
        return _uniform_step(self.time)


def _uniform_step(time: np.ndarray) -> float:
    if time.size < 2:
        return float("nan")
    steps = np.diff(time)
    dt = (time[-1] - time[0]) / (time.size - 1)
    return float(dt) if np.allclose(steps, dt, rtol=1e-9, atol=0) else float("nan")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(trajectories: Trajectories, index: np.ndarray | None = None, n_steps: int | None = None) -> str:
    """SHA-256 of the data of trajectories ``index`` (default: all) over their first ``n_steps`` times: the
    times, state names, states and drive, as float64 bytes. Two files with equal fingerprints hold the same
    trajectories to the bit; a file regenerated with other settings does not."""
    tr = trajectories
    index = np.arange(tr.n_traj) if index is None else np.asarray(index, dtype=int)
    steps = slice(0, tr.n_steps if n_steps is None else int(n_steps))
    h = hashlib.sha256()
    h.update(json.dumps([list(tr.state_names), list(tr.drive_names)]).encode())
    for part in (tr.time[steps], tr.states[index, steps], None if tr.drive is None else tr.drive[index, steps]):
        if part is not None:
            h.update(np.ascontiguousarray(part, dtype="<f8").tobytes())
    return h.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of what produced a file or a result, recorded for reproducibility."""
    from importlib.metadata import PackageNotFoundError, version

    import scipy

    try:
        physrnn_version = version("physrnn")
    except PackageNotFoundError:  # running from a source tree that was never installed
        physrnn_version = "unknown"
    return {
        "physrnn": physrnn_version,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "platform": platform.platform(),
    }


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, before any work, if ``path`` cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"output path '{p}' is a directory; give a file name such as '{p / 'ensemble.h5'}'")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write '{p}': directory '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write '{p}': directory '{parent}' is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"cannot write '{p}': the existing file is read-only")
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def temporary_path(path: str | os.PathLike, suffix: str = "") -> Path:
    """The temporary name ``path`` is written under before its rename, ``.NAME.PID.tmp`` + ``suffix`` beside it.

    Temporaries of the same output left by processes that no longer run (killed with SIGKILL, or a machine that
    went down) are removed first, so they do not pile up: an ensemble's can be hundreds of megabytes."""
    path = Path(path)
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{glob_escape(prefix)}*.tmp*"):
        pid = stale.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    return path.with_name(f"{prefix}{os.getpid()}.tmp{suffix}")


def _scale(group: h5py.Group, name: str, data: np.ndarray, label: str, dtype=None, **attrs) -> h5py.Dataset:
    ds = group.create_dataset(name, data=data, dtype=dtype)
    for k, v in attrs.items():
        ds.attrs[k] = v
    ds.make_scale(label)
    return ds


class TrajectoryWriter:
    """Write an ensemble trajectory by trajectory-batch, atomically.

    >>> with TrajectoryWriter(path, system="oscillator", time=t, n_traj=n, state_names=("x", "v"),
    ...                       state_units=("L", "L/T"), method="exact", drive_names=names) as w:
    ...     w.write_params(params)
    ...     w.write(slice(0, 100), states, drive)

    The file appears at ``path`` only when the ``with`` block ends without an exception.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        system: str,
        time: np.ndarray,
        n_traj: int,
        state_names: tuple[str, ...],
        state_units: tuple[str, ...],
        method: str,
        drive_names: tuple[str, ...] = (),
        attrs: Mapping[str, Any] | None = None,
        sources: list[tuple[str, slice]] | None = None,
    ) -> None:
        """``sources``: for a virtual ensemble, (trajectory file relative to ``path``'s folder, its block of
        trajectories) covering ``range(n_traj)`` in order; the series are then virtual and ``write`` is not used.

        Every value written must be finite (a ``ValueError`` otherwise, and no file), except a rollout's states
        from the step its ``/params/diverged_at`` flags (written before the states)."""
        if not np.isfinite(np.asarray(time, dtype=np.float64)).all():
            raise ValueError("the time grid holds NaN or inf; nothing was written")
        self.path = check_output_path(path)
        self._sources = sources
        self._tmp = temporary_path(self.path)
        self._spec = dict(system=system, time=np.asarray(time, dtype=np.float64), n_traj=int(n_traj),
                          state_names=tuple(state_names), state_units=tuple(state_units), method=method,
                          drive_names=tuple(drive_names), attrs=dict(attrs or {}))
        self._file: h5py.File | None = None
        self._diverged_at: np.ndarray | None = None

    def __enter__(self) -> TrajectoryWriter:
        s = self._spec
        time, n_traj = s["time"], s["n_traj"]
        n_steps, n_drive = time.size, len(s["drive_names"])
        f = self._file = h5py.File(self._tmp, "w", track_order=True)
        try:
            f.attrs["schema"] = SCHEMA
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["system"] = s["system"]
            f.attrs["method"] = s["method"]
            f.attrs["dt"] = _uniform_step(time)
            f.attrs["n_traj"] = n_traj
            f.attrs["n_steps"] = n_steps
            f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            f.attrs["software"] = json.dumps(software_versions())
            for k, v in s["attrs"].items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
            t_scale = _scale(f, "time", time, "time", units="T")
            traj_scale = _scale(f, "trajectory", np.arange(n_traj, dtype=np.int64), "trajectory")

            def series(name: str, names: tuple[str, ...], component: str) -> h5py.Dataset:
                """A (trajectory, time, component) dataset, one trajectory per chunk, dims labelled and scaled."""
                width = len(names)
                if self._sources is None:
                    ds = f.create_dataset(name, shape=(n_traj, n_steps, width), dtype="f8",
                                          chunks=(1, min(n_steps, max(1, 2**17 // width)), width), **_COMPRESSION)
                else:  # NaN where a source cannot be read; read_trajectories checks that every source exists
                    layout = h5py.VirtualLayout(shape=(n_traj, n_steps, width), dtype="f8")
                    for source, block in self._sources:
                        layout[block] = h5py.VirtualSource(source, name, shape=(block.stop - block.start, n_steps,
                                                                                width), dtype="f8")
                    ds = f.create_virtual_dataset(name, layout, fillvalue=np.nan)
                ds.attrs["components"] = list(names)
                comp_scale = _scale(f, component, np.array(names, dtype=object), component,
                                    dtype=h5py.string_dtype())
                for i, sc in enumerate((traj_scale, t_scale, comp_scale)):
                    ds.dims[i].label = sc.name.lstrip("/")
                    ds.dims[i].attach_scale(sc)
                return ds

            self.states = series("states", s["state_names"], "component")
            self.states.attrs["units"] = list(s["state_units"])
            self.drive = series("drive", s["drive_names"], "drive_component") if n_drive else None
            self._traj_scale = traj_scale
            f.create_group("params", track_order=True)
        except BaseException:
            self._abort()
            raise
        return self

    def write_params(self, params: Mapping[str, np.ndarray]) -> None:
        """Per-trajectory parameters: each array's first dimension is n_traj."""
        n_traj = self._spec["n_traj"]
        group = self._file["params"]
        for name, value in params.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != n_traj:
                raise ValueError(f"parameter '{name}' has shape {value.shape}; its first dimension must be "
                                 f"n_traj = {n_traj}")
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                raise ValueError(f"parameter '{name}' holds NaN or inf; give finite values")
            if name == DIVERGED_AT:
                self._diverged_at = value
            chunks = (min(n_traj, max(1, 2**16 // max(1, int(np.prod(value.shape[1:]))))),) + value.shape[1:]
            ds = group.create_dataset(name, data=value, chunks=chunks, **_COMPRESSION)
            ds.dims[0].label = "trajectory"
            ds.dims[0].attach_scale(self._traj_scale)
            for axis, size in enumerate(value.shape[1:], start=1):  # every axis named, as netCDF-4 needs
                scale = self._axis_scale(name, axis, size)
                ds.dims[axis].label = scale.name.lstrip("/")
                ds.dims[axis].attach_scale(scale)

    def _axis_scale(self, param: str, axis: int, size: int) -> h5py.Dataset:
        """The dimension scale of a parameter's axis: its documented name (:data:`PARAM_DIMENSIONS`; ``component``
        for an initial state ``x0``), shared by every parameter that uses it, or ``PARAM_dimK`` if none applies."""
        f = self._file
        names = PARAM_DIMENSIONS.get(param, ())
        if axis <= len(names):
            label = names[axis - 1]
        elif param == "x0" and axis == 1 and size == len(self._spec["state_names"]):  # an initial state vector
            label = "component"
        else:
            label = f"{param}_dim{axis}"
        if label in f and f[label].shape != (size,):
            label = f"{param}_dim{axis}"
        if label not in f:
            _scale(f, label, np.arange(size, dtype=np.int64), label)
        return f[label]

    def set_attrs(self, **attrs: Any) -> None:
        """File attributes known only once the series are written (a reference solution's certificate)."""
        for k, v in attrs.items():
            self._file.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v

    def write(self, index: slice, states: np.ndarray, drive: np.ndarray | None = None) -> None:
        """Write the trajectories ``index`` (a slice of the ensemble); refuses NaN or inf (see ``__init__``)."""
        flagged = None if self._diverged_at is None else self._diverged_at[index]
        start = range(self._spec["n_traj"])[index].start
        for name, values in (("states", states), ("drive", drive)):
            problem = None if values is None else nonfinite_problem(
                values, self._spec["time"], flagged if name == "states" else None, name, offset=start)
            if problem:
                raise ValueError(f"refusing to write '{self.path}': {problem}")
        self.states[index] = states
        if self.drive is not None:
            if drive is None:
                raise ValueError("this file has a drive; pass the drive with the states")
            self.drive[index] = drive

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise


def write_trajectories(path: str | os.PathLike, trajectories: Trajectories) -> Path:
    """Write an in-memory ensemble to ``path`` atomically; returns the path."""
    tr = trajectories
    extra = {k: v for k, v in tr.attrs.items() if k not in ("created", "software")}
    with TrajectoryWriter(path, system=tr.system, time=tr.time, n_traj=tr.n_traj, state_names=tr.state_names,
                          state_units=tr.state_units, method=tr.method, drive_names=tr.drive_names,
                          attrs=extra) as w:
        w.write_params(tr.params)
        w.write(slice(None), tr.states, tr.drive)
    return w.path


# ---------------------------------------------------------------------- reading
_REQUIRED_ATTRS = ("schema", "schema_version", "system", "method", "n_traj", "n_steps")


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise TrajectoryFileError(f"no such trajectory file: '{path}'")
    if path.is_dir():
        raise TrajectoryFileError(f"'{path}' is a directory, not a trajectory file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        msg = str(err)
        if "truncated" in msg:
            raise TrajectoryFileError(
                f"'{path}' is truncated ({path.stat().st_size} bytes; the write did not finish or the copy is "
                "incomplete); regenerate it with `physrnn simulate`") from None
        raise TrajectoryFileError(
            f"'{path}' is not a readable HDF5 file ({msg.split('(')[-1].rstrip(')') or msg}); "
            "give a file written by `physrnn simulate`") from None


def _attr(f: h5py.File, name: str) -> Any:
    value = f.attrs[name]
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _check_sources(p: Path, f: h5py.File) -> None:
    """A virtual dataset reads a missing source as its fill value, silently; refuse that instead."""
    for name in ("states", "drive"):
        if name in f and f[name].is_virtual:
            missing = sorted({s.file_name for s in f[name].virtual_sources()
                              if s.file_name != "." and not (p.parent / s.file_name).is_file()})
            if missing:
                raise TrajectoryFileError(
                    f"'{p}' presents shard files as one ensemble, but {len(missing)} of them are missing "
                    f"(first: '{p.parent / missing[0]}'); keep the shard folder beside it or regenerate with "
                    "`physrnn simulate --shards`")


def read_trajectories(path: str | os.PathLike) -> Trajectories:
    """Read and validate a trajectory file.

    Raises
    ------
    TrajectoryFileError
        If the file is missing, not HDF5, truncated, not a physrnn trajectory file, of another schema
        version, or inconsistent with its own layout; the message says which and what to do.
    """
    p = Path(path)
    with _open(p) as f:
        _check_sources(p, f)
        if "schema" not in f.attrs:
            found = ", ".join(sorted(f.keys())[:5]) or "nothing"
            raise TrajectoryFileError(
                f"'{p}' is not a physrnn trajectory file: it has no 'schema' attribute (top level holds: {found})")
        schema = _attr(f, "schema")
        if schema != SCHEMA:
            raise TrajectoryFileError(f"'{p}' has schema '{schema}', not '{SCHEMA}'; it is not a trajectory file")
        version = _attr(f, "schema_version")
        if version != SCHEMA_VERSION:
            age = "older" if version < SCHEMA_VERSION else "newer"
            fix = ("regenerate it with `physrnn simulate` (the config is in its 'config' attribute)"
                   if age == "older" else "upgrade physrnn to read it")
            raise TrajectoryFileError(
                f"'{p}' has schema_version {version}, {age} than the version this physrnn reads "
                f"({SCHEMA_VERSION}); {fix}")
        missing = [a for a in _REQUIRED_ATTRS if a not in f.attrs]
        missing += [d for d in ("time", "states", "params") if d not in f]
        if missing:
            raise TrajectoryFileError(f"'{p}' is incomplete: missing {', '.join(missing)}")
        n_traj, n_steps = _attr(f, "n_traj"), _attr(f, "n_steps")
        states = f["states"]
        if states.ndim != 3 or states.shape[:2] != (n_traj, n_steps):
            raise TrajectoryFileError(
                f"'{p}': /states has shape {states.shape}, expected ({n_traj}, {n_steps}, n_state)")
        if f["time"].shape != (n_steps,):
            raise TrajectoryFileError(f"'{p}': /time has shape {f['time'].shape}, expected ({n_steps},)")
        drive, drive_names = None, ()
        if "drive" in f:
            if f["drive"].shape[:2] != (n_traj, n_steps):
                raise TrajectoryFileError(
                    f"'{p}': /drive has shape {f['drive'].shape}, expected ({n_traj}, {n_steps}, n_drive)")
            drive = f["drive"][()]
            drive_names = tuple(str(c) for c in f["drive"].attrs["components"])
        params = {}
        for name, ds in f["params"].items():
            if ds.shape[:1] != (n_traj,):
                raise TrajectoryFileError(
                    f"'{p}': /params/{name} has shape {ds.shape}; its first dimension must be n_traj = {n_traj}")
            params[name] = ds[()]
        series, time = states[()], f["time"][()]
        problems = [nonfinite_problem(values, time, params.get(DIVERGED_AT) if name == "states" else None, name)
                    for name, values in (("states", series), ("drive", drive)) if values is not None]
        problems += [f"params/{k}: holds NaN or inf" for k, v in params.items()
                     if v.dtype.kind in "fc" and not np.isfinite(v).all()]
        if not np.isfinite(time).all():
            problems.append("time: holds NaN or inf")
        problems = [q for q in problems if q]
        if problems:
            raise TrajectoryFileError(f"'{p}' holds non-finite values ({'; '.join(problems)}); regenerate it with "
                                      "`physrnn simulate` (its config is in the file's 'config' attribute)")
        attrs = {}
        for key in f.attrs:
            if key in ("schema", "schema_version", "system", "method", "n_traj", "n_steps", "dt"):
                continue
            value = _attr(f, key)
            if key in ("config", "software", "certificate"):  # the attributes written as JSON
                value = json.loads(value)
            attrs[key] = value
        return Trajectories(
            system=_attr(f, "system"),
            time=time,
            states=series,
            params=params,
            state_names=tuple(str(c) for c in states.attrs["components"]),
            state_units=tuple(str(c) for c in states.attrs["units"]),
            method=_attr(f, "method"),
            drive=drive,
            drive_names=drive_names,
            attrs=attrs,
        )

