"""physrnn: recurrent networks that learn the time-step update of physical systems, judged against exact physics.

The physics lives in the sibling package :mod:`simulators` (NumPy/SciPy/h5py only).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("physrnn")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: Every model type, by name (defined here so that the command line can list them without importing TensorFlow).
MODEL_TYPES = ("simplernn", "gru", "lstm", "esn", "linear", "persistence", "euler", "rk4")
