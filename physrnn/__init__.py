"""physrnn: recurrent networks that learn the time-step update of physical systems, judged against exact physics.

The front door::

    import physrnn as pr

    train = pr.simulate(system="oscillator", n_traj=24, dt=0.05, t_end=20, seed=1,
                        damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
    test = pr.simulate(system="oscillator", n_traj=4, dt=0.05, t_end=40, seed=2,
                       damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
    fit, val = pr.StepData.from_trajectories(train).split((0.8, 0.2), seed=0)
    data = pr.StepData.from_trajectories(test)
    model = pr.GRU(units=32, window=2).fit(fit, val)     # or pr.build_model("gru", units=32, window=2)
    scores = pr.evaluate(model.rollout(data), data)       # in memory: scores.summary()["rmse"], ...
    inside = pr.diagnose(model, data)                     # its step map against the exact flow map: Jacobian,
                                                          # equilibria, increments, 10⁵-step runs, error growth
    result = pr.run_study("studies/demo.toml")            # a StudyResult
    pr.write_report(result, "data/reports/demo")

The physics lives in the sibling package :mod:`simulators` (NumPy/SciPy/h5py only). Systems, models, metrics,
analyses and report figures are registries (:func:`register_system`, :func:`register_model`,
:func:`register_metric`, :func:`register_analysis`, :func:`register_figure`). Importing physrnn imports no
TensorFlow; a network model's class brings it in when first used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("physrnn")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# name -> module that defines it, or (module, name there), imported on first access (PEP 562): the front door
# costs nothing until used, and TensorFlow is imported only with a network model's class.
_EXPORTS = {
    # physics
    "EnsembleConfig": "simulators", "Trajectories": "simulators", "read_trajectories": "simulators",
    "write_trajectories": "simulators", "solve": "simulators", "PhysicalSystem": "simulators",
    "register_system": "simulators", "get_system": "simulators", "system_names": "simulators",
    "simulate": "physrnn.api",
    # data
    "StepData": "physrnn.data", "FeatureSpec": "physrnn.data",
    # models
    "build_model": "physrnn.models", "load_model": "physrnn.models", "register_model": "physrnn.models",
    "model_kinds": "physrnn.models", "Rollout": "physrnn.models", "StepModel": "physrnn.models",
    "SimpleRNN": "physrnn.models", "GRU": "physrnn.models", "LSTM": "physrnn.models",
    "ESN": ("physrnn.models", "EchoStateNetwork"), "LinearMap": ("physrnn.models", "LinearFlowMap"),
    "NVAR": "physrnn.models", "SINDy": "physrnn.models", "SympNet": "physrnn.models",
    "Persistence": "physrnn.models", "Euler": ("physrnn.models", "EulerBaseline"),
    "RK4": ("physrnn.models", "RK4Baseline"),
    # evaluation and results
    "evaluate": "physrnn.evaluation", "Scores": "physrnn.evaluation", "register_metric": "physrnn.metrics",
    "Metric": "physrnn.metrics", "register_analysis": "physrnn.analysis", "Analysis": "physrnn.analysis",
    "diagnose": "physrnn.diagnostics", "Diagnostics": "physrnn.diagnostics",
    # studies and reports
    "run_study": "physrnn.runner", "load_study": "physrnn.study", "StudyResult": "physrnn.results",
    "write_report": "physrnn.report", "register_figure": "physrnn.figures", "Figure": "physrnn.figures",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name] if isinstance(_EXPORTS[name], tuple) else (_EXPORTS[name], name)
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'physrnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
