"""Models of the Euler-style update, all behind one interface: ``fit``, closed-loop ``rollout``, ``save``, ``load``.

=================  ==========================================================================================
``simplernn``,     Keras recurrent step models (:mod:`.recurrent`): a window of the last ``window`` inputs,
``gru``, ``lstm``  from a zero state, gives the increment g; trained one-step or through their own rollout.
``esn``            Echo-state network (:mod:`.esn`): fixed random reservoir, ridge readout in closed form.
``linear``         Least-squares affine map from the same window of inputs to g (:mod:`.linear`).
``nvar``           Next-generation reservoir (:mod:`.nvar`): ridge readout on a delay embedding and its monomials.
``sindy``          Sparse identification of the vector field (:mod:`.sindy`, PySINDy), rolled out by RK4.
``sympnet``        A step map symplectic for any weights (:mod:`.symplectic`): kicks and drifts by learned potentials.
``persistence``    g = 0 (:mod:`.baselines`, like the two below).
``euler``, ``rk4`` One explicit Euler or classical RK4 step of the *true* right-hand side at the same Δt.
=================  ==========================================================================================

Every rollout is closed-loop: after ``context`` true observed states, a model consumes only its own
predictions and the known inputs (drive features, parameters). A trajectory whose state becomes non-finite or
exceeds the model's bound is flagged (``Rollout.diverged``) and continues as NaN; nothing raises.

The kinds, their settings and help texts live in :mod:`.configs` (no TensorFlow); this package imports
TensorFlow only when a network model's class is first asked for (``physrnn.models.GRU``, :func:`build_model`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Rollout, StepModel, check_model_path, diverging, load_model
from .configs import (EchoStateConfig, LinearConfig, ModelKind, NoConfig, NVARConfig, RecurrentConfig, SINDyConfig,
                      SympNetConfig,
                      describe_settings, model_class, model_config, model_kind, model_kinds, register_model)

__all__ = ["GRU", "LSTM", "EchoStateCell", "EchoStateConfig", "EchoStateNetwork", "EulerBaseline", "LinearConfig",
           "LinearFlowMap", "ModelKind", "NVAR", "NVARConfig", "NoConfig", "Persistence", "RK4Baseline", "RecurrentConfig",
           "RecurrentStepModel", "Rollout", "SINDy", "SINDyConfig", "SimpleRNN", "StepModel", "SympNet",
           "SympNetConfig", "build_model", "check_model_path",
           "describe_settings",
           "diverging", "load_model", "model_class", "model_config", "model_kind", "model_kinds", "register_model",
           "ridge_readout"]

# Classes that live in a module importing TensorFlow: loaded on first access (PEP 562).
_LAZY = {"GRU": "recurrent", "LSTM": "recurrent", "SimpleRNN": "recurrent", "RecurrentStepModel": "recurrent",
         "EchoStateCell": "esn", "EchoStateNetwork": "esn", "LinearFlowMap": "linear", "ridge_readout": "linear",
         "NVAR": "nvar", "SINDy": "sindy", "SympNet": "symplectic",
         "Persistence": "baselines", "EulerBaseline": "baselines", "RK4Baseline": "baselines"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(kind: str, **settings: Any) -> StepModel:
    """A model of type ``kind`` with the given settings (validated; unknown settings are rejected)."""
    config = model_config(kind, **settings)
    return model_class(kind)(config)
