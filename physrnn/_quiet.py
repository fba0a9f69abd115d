"""A quiet start for the command line: TensorFlow's import-time log lines go nowhere unless asked for.

TensorFlow's C++ runtime writes to file descriptor 2 as it loads (absl's "All log messages before
absl::InitializeLog() ...", the CUDA probe's "Could not find cuda drivers", oneDNN notices), whatever
``TF_CPP_MIN_LOG_LEVEL`` says for the lines before absl is initialised; later lines obey the level. So the
command line (never the library) sets the level to errors only, silences descriptor 2 while ``tensorflow``
executes its import, and keeps TensorFlow's Python logger (``tf.function`` retracing notes) to errors.
``physrnn COMMAND --verbose`` leaves all of it alone.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["quiet_tensorflow"]


@contextmanager
def _descriptor_2_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name: str):  # everything else (resource readers, ...) from the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _descriptor_2_silenced():
            self._loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders would, and loads it with descriptor 2 silenced (once)."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_tensorflow() -> None:
    """Make TensorFlow, when something first imports it, start without its log lines (see the module)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a level the user set is theirs
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
