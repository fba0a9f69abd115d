"""The study cache's integrity: every entry sealed with a checksum and the kind of what it holds, and keys
that change with the code that computed the entry.

An entry (``ROOT/cache/<stage>/<key>.h5`` or ``.keras``) is written under a temporary name, its SHA-256 and kind
recorded beside it in ``<entry>.sha256`` (JSON), and only then renamed into place, so a reader never sees an
entry without its seal. Before use, :func:`problem` recomputes the checksum and reads the kind from the file
itself: an entry altered after it was written (a rollout overwritten with the truth) or copied under another
key (a GRU over an LSTM's) is reported and rebuilt, never used. No TensorFlow is imported.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import h5py

import simulators
from simulators.trajectory_file import file_sha256, software_versions, temporary_path

__all__ = ["code_fingerprint", "entry_kind", "model_module", "problem", "store", "usable"]

_PACKAGE = Path(__file__).resolve().parent
_SIMULATORS = Path(simulators.__file__).resolve().parent


@lru_cache(maxsize=None)
def code_fingerprint(stage: str, model_module: str | None = None) -> str:
    """SHA-256 of the physrnn version and the source of the code a stage's output depends on: the simulators
    for ``"simulate"``; for ``"train"``, also the features and the models (and ``model_module``, the file of a
    model class registered from outside physrnn). Part of the cache keys, so a result never outlives a change
    to the code that computed it unseen."""
    files = sorted(_SIMULATORS.glob("*.py"))
    if stage == "train":
        files += [_PACKAGE / "data.py", *sorted((_PACKAGE / "models").glob("*.py"))]
        if model_module and Path(model_module).resolve() not in files:
            files.append(Path(model_module).resolve())
    elif stage != "simulate":
        raise ValueError(f"no code fingerprint for stage {stage!r}; choose simulate or train")
    digest = hashlib.sha256(software_versions()["physrnn"].encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_module(cls: type) -> str | None:
    """The source file of a model class (for :func:`code_fingerprint`), None if it has none."""
    try:
        return inspect.getsourcefile(cls)
    except TypeError:
        return None


def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def entry_kind(path: Path) -> str:
    """What an entry holds, read from the file itself: a model file's kind, ``rollout:KIND`` for a rollout, the
    system's name for an ensemble."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("physrnn.json"))["kind"]
    with h5py.File(path, "r") as f:
        method = str(f.attrs.get("method", ""))
        return method if method.startswith("rollout:") else str(f.attrs.get("system", ""))


def store(path: Path, kind: str, write: Callable[[Path], object]) -> Path:
    """Write the entry ``path`` through ``write(temporary_path)``, seal it, and rename it into place."""
    path = Path(path)
    staging = temporary_path(path, path.suffix)
    try:
        write(staging)
        seal = {"sha256": file_sha256(staging), "kind": kind, "physrnn": software_versions()["physrnn"]}
        seal_tmp = temporary_path(_seal_path(path))
        seal_tmp.write_text(json.dumps(seal))
        os.replace(seal_tmp, _seal_path(path))
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def problem(path: Path, kind: str) -> str | None:
    """Why the entry ``path`` must not be used as a ``kind``, in words, or None if it is sound."""
    path = Path(path)
    try:
        seal = json.loads(_seal_path(path).read_text())
    except (OSError, ValueError):
        return "has no checksum (written by an older physrnn, or its seal was removed)"
    if file_sha256(path) != seal.get("sha256"):
        return "does not match its checksum (altered or corrupt since it was written)"
    try:
        found = entry_kind(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return "cannot be read"
    if found != kind:
        return f"holds a {found or 'file of unknown kind'} where a {kind} belongs"
    if seal.get("kind") != kind:
        return f"is sealed as a {seal.get('kind')} where a {kind} belongs"
    return None


def usable(path: Path, kind: str, what: str, log: Callable[[str], None]) -> bool:
    """Whether the entry ``path`` exists and is sound (:func:`problem`); an unsound one is removed with its seal,
    and ``log`` told in one line (``what``: the stage and model), so that it is rebuilt."""
    path = Path(path)
    if not path.exists():
        return False
    why = problem(path, kind)
    if why is None:
        return True
    log(f"{what}: the cached {path.name} {why}; rebuilding it")
    path.unlink(missing_ok=True)
    _seal_path(path).unlink(missing_ok=True)
    return False
