"""physrnn: recurrent networks that learn the time-step update of physical systems, judged against exact physics.

The physics lives in the sibling package :mod:`simulators` (NumPy/SciPy/h5py only).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("physrnn")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
