"""The model interface every kind shares: ``fit``, closed-loop ``rollout``, ``save``, :func:`load_model`.

No TensorFlow here: a model whose fitted state is a Keras network brings Keras with its own module, and
loading such a file imports Keras only then.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simulators.trajectory_file import check_output_path, software_versions, temporary_path

from ..data import FeatureSpec, StepData
from .configs import NoConfig, model_class, model_kind, model_kinds

__all__ = ["Rollout", "StepModel", "check_model_path", "diverging", "load_model"]

_FORMAT = "physrnn.model"
_FORMAT_VERSION = 1
_META = "physrnn.json"
_ARRAYS = "arrays.npz"


def check_model_path(path: str | os.PathLike) -> Path:
    """Fail early, before any work, if ``path`` cannot take a model file (a writable ``NAME.keras``)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model files end in .keras, got '{path}'; for example '{path.with_suffix('.keras')}'")
    return check_output_path(path)


def diverging(xp, state, bound):
    """The one divergence rule of every closed loop: which states (batch, n) have a non-finite component or one
    beyond ``bound`` in magnitude, bool (batch,). ``xp`` is the array namespace: ``numpy``, or
    ``tensorflow.experimental.numpy`` inside the compiled loops."""
    return ~(xp.all(xp.isfinite(state), axis=-1) & xp.all(xp.abs(state) <= bound, axis=-1))


@dataclass(frozen=True, eq=False)
class Rollout:
    """A closed-loop rollout of a batch of trajectories.

    Attributes
    ----------
    time : ndarray of shape (n_steps,)
    observed : ndarray of shape (n_traj, n_steps, n_obs)
        Predicted observed states; the first ``context`` are the true ones; NaN after a divergence.
    context : int
        Number of true states the rollout started from.
    diverged : ndarray of shape (n_traj,), bool
    diverged_at : ndarray of shape (n_traj,), int
        First step index at which a trajectory diverged (−1 if it did not).
    bound : float
        The state magnitude beyond which a trajectory counts as diverged.
    seconds : float
        Wall time of the rollout.
    """

    time: np.ndarray
    observed: np.ndarray
    context: int
    diverged: np.ndarray
    diverged_at: np.ndarray
    bound: float
    seconds: float


class StepModel(ABC):
    """A model of the Euler-style update ``o_{i+1} = o_i + Δt · g(u_{≤i})``.

    Subclasses set ``kind`` and ``config_class``; fitted state ends in ``_`` (``spec_``, ``dt_``,
    ``bound_``, ``network_``, ``history_``). ``fit`` returns the model.
    """

    kind: ClassVar[str]
    config_class: ClassVar[type] = NoConfig
    #: Whether fitting learns anything from the data (so a study trains it once per seed).
    learns: ClassVar[bool] = True

    def __init__(self, config=None, **settings: Any) -> None:
        """``Model(config)`` with a config object, or ``Model(units=32, ...)`` with its settings by name."""
        if config is None:
            config = self._config_from(settings)
        elif settings:
            raise TypeError(f"give {type(self).__name__} a config or settings by name, not both")
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.spec_: FeatureSpec | None = None
        self.dt_: float | None = None
        self.bound_: float | None = None
        self.history_: dict[str, list[float]] = {}
        self.fit_seconds_: float = 0.0
        self.provenance_: dict[str, Any] = {}  # where the training data came from (set by the caller)

    @classmethod
    def _config_from(cls, settings: dict[str, Any]):
        from .configs import model_config

        kind = getattr(cls, "kind", None)
        if isinstance(kind, str):  # a registered kind: its pinned settings and its list of allowed ones
            return model_config(kind, **settings)
        return cls.config_class(**settings)

    # -- what a subclass provides
    def uses_validation(self) -> bool:
        """Whether fitting reads the validation data (early stopping, a setting chosen on it). A study of trials
        (each model trained on one trajectory) holds back the end of that trajectory only from models that do."""
        return False

    @property
    def min_context(self) -> int:
        """The fewest true states a rollout needs before it runs closed-loop (the config's ``min_context``)."""
        return getattr(self.config, "min_context", 1)

    def _fit(self, train: StepData, validation: StepData | None, *, verbose: int | str, checkpoint_dir,
             callbacks) -> None:
        """Fit on the data (the base class has already recorded spec_, dt_, bound_)."""

    @abstractmethod
    def _rollout(self, data: StepData, context: int, n_steps: int, bound: float):
        """Return (observed (n, n_steps, n_obs) with NaN after divergence, diverged_at (n,))."""

    # -- the interface
    def fit(self, train: StepData, validation: StepData | None = None, *, verbose: int | str = "auto",
            checkpoint_dir: str | os.PathLike | None = None, callbacks: list | None = None) -> StepModel:
        """Fit on ``train`` (early stopping and scaling use ``validation`` and ``train`` only); returns self.

        ``verbose``, ``checkpoint_dir`` (resume a killed training) and ``callbacks`` (Keras callbacks) are
        options of models trained by gradient descent; every model takes the same options, and the others
        have nothing to do with them, so callers need not tell models apart.
        """
        for name, value in (("train", train), ("validation", validation)):
            if value is not None and not isinstance(value, StepData):
                raise TypeError(f"{name} must be a StepData, got {type(value).__name__}; build one with "
                                "StepData.from_trajectories(...) or, from arrays, StepData.from_arrays(states, dt=...)")
        if validation is not None and validation.spec != train.spec:
            raise ValueError("train and validation data were built with different feature specs")
        self.spec_, self.dt_ = train.spec, float(train.dt)
        # Divergence: beyond 100x the largest observed magnitude in training (or 1 for all-zero data).
        self.bound_ = 100.0 * max(1.0, float(np.abs(train.observed).max()))
        start = time.perf_counter()
        self._fit(train, validation, verbose=verbose, checkpoint_dir=checkpoint_dir, callbacks=callbacks)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def rollout(self, data: StepData, *, context: int | None = None, n_steps: int | None = None,
                bound: float | None = None) -> Rollout:
        """Closed-loop rollout of every trajectory in ``data`` from its first ``context`` true states.

        Parameters
        ----------
        data : StepData
            True observed states (only the first ``context`` are used) and known inputs for every step.
        context : int, optional
            True states given (default: the model's minimum).
        n_steps : int, optional
            Length of the rollout including the context (default: all of ``data``).
        bound : float, optional
            Divergence bound on |state| (default: 100x the largest magnitude seen in training).
        """
        self._check_fitted()
        if not isinstance(data, StepData):
            raise TypeError(f"data must be a StepData, got {type(data).__name__}; build one with "
                            "StepData.from_trajectories(...) or StepData.from_arrays(states, dt=...)")
        if data.spec != self.spec_:
            raise ValueError(f"the data's features {data.spec.to_config()} differ from the model's "
                             f"{self.spec_.to_config()}; build the data with the model's spec")
        if not np.isclose(data.dt, self.dt_, rtol=1e-9):
            raise ValueError(f"the data's dt = {data.dt:g} differs from the model's dt = {self.dt_:g}; the learned "
                             "update is tied to its time step")
        total = data.observed.shape[1]
        n_steps = total if n_steps is None else n_steps
        context = self.min_context if context is None else context
        if not self.min_context <= context < n_steps <= total:
            raise ValueError(f"need {self.min_context} <= context ({context}) < n_steps ({n_steps}) <= the data's "
                             f"{total} steps")
        bound = self.bound_ if bound is None else float(bound)
        start = time.perf_counter()
        observed, diverged_at = self._rollout(data, context, n_steps, bound)
        seconds = time.perf_counter() - start
        diverged_at = np.asarray(diverged_at, dtype=np.int64)
        return Rollout(time=data.time[:n_steps], observed=observed, context=context, diverged=diverged_at >= 0,
                       diverged_at=diverged_at, bound=bound, seconds=seconds)

    def step_jacobian(self, data: StepData, steps) -> np.ndarray:
        """The one-step map's derivatives ∂o_{n+1}/∂o_{n−ℓ} with respect to each observed state in its window,
        at steps ``n`` of the true trajectories of ``data`` (its history as given there).

        Returns
        -------
        ndarray of shape (n_traj, len(steps), window, n_obs, n_obs)
            Window position ``window − 1`` is o_n itself (lag ℓ = window − 1 − position); the physics baselines
            have window 1 and differentiate the full state. :func:`physrnn.diagnostics.diagnose` turns this into
            the Jacobian of the map on the true trajectories.
        """
        self._check_fitted()
        if not isinstance(data, StepData) or data.spec != self.spec_:
            raise ValueError("step_jacobian needs StepData built with the model's feature spec")
        steps = np.atleast_1d(np.asarray(steps, dtype=int))
        first = self.min_context - 1
        if steps.size == 0 or steps.min() < first or steps.max() >= data.observed.shape[1] - 1:
            raise ValueError(f"steps must lie in [{first}, {data.observed.shape[1] - 2}] (a full window behind "
                             f"and a step ahead), got {steps.min() if steps.size else 'none'} to "
                             f"{steps.max() if steps.size else 'none'}")
        return self._step_jacobian(data, steps)

    def _step_jacobian(self, data: StepData, steps: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"the {self.kind} model does not give its step Jacobian")

    def _check_fitted(self) -> None:
        if self.spec_ is None:
            raise RuntimeError(f"this {self.kind} model is not fitted; call fit() first or load a saved model")

    # -- persistence
    def _metadata(self) -> dict[str, Any]:
        return {"format": _FORMAT, "format_version": _FORMAT_VERSION, "kind": self.kind,
                "config": asdict(self.config), "spec": self.spec_.to_config(), "dt": self.dt_,
                "bound": self.bound_, "history": self.history_, "fit_seconds": self.fit_seconds_,
                "provenance": self.provenance_, "software": software_versions()}

    def _network(self):
        """The Keras network holding the fitted state, saved inside the .keras file (None: nothing to save)."""
        return None

    def _restore(self, network) -> None:
        """Rebuild fitted state from a loaded network."""

    def _arrays(self) -> dict[str, np.ndarray]:
        """Fitted arrays saved beside the metadata (``arrays.npz`` in the file), for a model whose fitted state is
        not a Keras network: it saves and loads without TensorFlow."""
        return {}

    def _restore_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild fitted state from the arrays :meth:`_arrays` saved."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write a ``.keras`` file (the Keras network, if any, plus ``physrnn.json``), atomically."""
        self._check_fitted()
        path = check_model_path(path)
        tmp = temporary_path(path, ".keras")
        network, arrays = self._network(), self._arrays()
        weights = [*(network.get_weights() if network is not None else ()), *arrays.values()]
        if not all(np.isfinite(w).all() for w in weights if np.issubdtype(np.asarray(w).dtype, np.number)):
            raise ValueError(f"refusing to save {path}: the {self.kind} model's weights hold NaN or inf (its training "
                             "diverged); train again with a lower learning_rate or a clipnorm")
        try:
            if network is not None:
                network.save(tmp)
                mode = "a"
            else:
                mode = "w"
            with zipfile.ZipFile(tmp, mode) as z:
                z.writestr(_META, json.dumps(self._metadata(), indent=2))
                if arrays:
                    buffer = io.BytesIO()
                    np.savez(buffer, **arrays)
                    z.writestr(_ARRAYS, buffer.getvalue())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path


def load_model(path: str | os.PathLike) -> StepModel:
    """Load a model written by :meth:`StepModel.save`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such model file: '{path}'")
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read(_META))
            has_network = "config.json" in z.namelist()
            arrays = {}
            if _ARRAYS in z.namelist():
                with np.load(io.BytesIO(z.read(_ARRAYS)), allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, ValueError, OSError):
        raise ValueError(f"'{path}' is not a physrnn model file (a .keras archive with {_META})") from None
    if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"'{path}' has model format {meta.get('format')} v{meta.get('format_version')}; this "
                         f"physrnn reads {_FORMAT} v{_FORMAT_VERSION}")
    if meta.get("kind") not in model_kinds():
        raise ValueError(f"'{path}' holds a model of unknown type {meta.get('kind')!r}; this physrnn knows "
                         f"{', '.join(model_kinds())}")
    cls = model_class(meta["kind"])
    model = cls(model_kind(meta["kind"]).config_class(**meta["config"]))
    spec = meta["spec"]
    model.spec_ = FeatureSpec(**{**spec, "parameters": tuple(spec["parameters"])})
    model.dt_, model.bound_ = meta["dt"], meta["bound"]
    model.history_, model.fit_seconds_ = meta["history"], meta["fit_seconds"]
    model.provenance_ = meta.get("provenance", {})
    network = None
    if has_network:
        import keras  # only a model with a network needs it

        network = keras.saving.load_model(path, compile=False)
    model._restore(network)
    model._restore_arrays(arrays)
    return model


