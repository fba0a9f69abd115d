"""What each model kind is and how it is set, without TensorFlow: the settings (frozen, validated config
classes) and the registry of model kinds.

Validating a study, listing the choices of ``physrnn train --model`` or printing each setting's meaning in
``--help`` reads from here and imports no TensorFlow; the model class itself is imported only when a model is
built (:func:`model_class`). A new model kind is one module with its class, plus one :func:`register_model`
line (here for the shipped kinds, or in the user's own code).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Mapping

import numpy as np

from simulators._validation import check_memory

__all__ = ["EchoStateConfig", "LinearConfig", "ModelKind", "NetworkTraining", "NoConfig", "PRECISIONS", "RecurrentConfig", "SympNetConfig",
           "describe_settings", "model_class", "model_config", "model_kind", "model_kinds", "register_model"]

PRECISIONS = ("float32", "float64")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {rel}, got {value!r}")


def _check_training(cfg) -> None:
    """The settings a network trained by Adam (then Levenberg–Marquardt or L-BFGS) shares, checked."""
    for name in ("epochs", "batch_size", "patience", "rollout_steps", "cg_steps"):
        _check_int(name, getattr(cfg, name), 1)
    _check_int("seed", cfg.seed, 0)
    _check_int("refine_steps", cfg.refine_steps, 0)
    _check_positive("learning_rate", cfg.learning_rate)
    _check_positive("clipnorm", cfg.clipnorm, allow_zero=True)
    if cfg.refine not in ("lm", "lbfgs"):
        raise ValueError(f"unknown refine {cfg.refine!r}; choose lm or lbfgs")
    if cfg.refine == "lm" and cfg.refine_steps and cfg.precision != "float64":
        raise ValueError(f"refine = 'lm' runs in float64, got precision = {cfg.precision!r}; "
                         "set precision = 'float64' (or refine = 'lbfgs')")
    if cfg.schedule not in ("cosine", "plateau"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose cosine or plateau")
    _check_precision(cfg.precision)
    horizons = cfg.horizons
    if isinstance(horizons, (str, bytes)) or not isinstance(horizons, (list, tuple)) or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in horizons):
        raise ValueError(f"horizons must be a list of whole numbers of steps such as [4, 16], got {horizons!r}")
    object.__setattr__(cfg, "horizons", tuple(int(k) for k in horizons))
    steps = (cfg.rollout_steps, *cfg.horizons)
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"horizons must rise from rollout_steps = {cfg.rollout_steps}, got {list(horizons)}; give "
                         "longer horizons, each longer than the last")
    if cfg.horizons and not (cfg.refine == "lm" and cfg.refine_steps):
        raise ValueError("horizons continue training by Levenberg–Marquardt: set refine = \"lm\" and refine_steps "
                         "(for example 200)")


@dataclass(frozen=True, kw_only=True)
class NetworkTraining:
    """How a network step model is trained (the settings every network kind shares): Adam on the one-step or a
    closed-loop loss, then optionally a second-order method and a curriculum of longer horizons.

    Parameters
    ----------
    epochs : int
        Passes of Adam over the training windows (fewer if early stopping ends it).
    batch_size : int
        Training windows per Adam step.
    learning_rate : float
        Initial Adam learning rate.
    schedule : {"cosine", "plateau"}
        "cosine": decay to 1e-3 of the initial rate over ``epochs``; "plateau": halve it whenever the
        validation loss stalls for ``patience // 2`` epochs.
    clipnorm : float
        Gradient-norm clipping (0: none).
    patience : int
        Early stopping on the validation loss, restoring the best weights.
    rollout_steps : int
        1: one-step teacher forcing; K > 1: the loss is averaged over K steps of the model's own rollout.
    horizons : tuple of int
        A curriculum after that training: Levenberg–Marquardt continued on each of these longer rollout horizons
        in turn (e.g. [4, 16]; each stage's windows strided by its horizon, so that a stage costs about what the
        one-step stage does). The weights kept are those of the stage whose closed loops of the validation
        trajectories err least (fewest diverged, then the lowest RMSE over their whole length in units of the
        training spread). Needs ``refine = "lm"``, ``refine_steps`` and validation data.
    refine_steps : int
        After Adam, at most this many iterations of a full-batch second-order method on the same loss (0:
        none). Adam's gradient noise leaves a floor on the loss that a second-order method removes on these
        small networks.
    refine : {"lm", "lbfgs"}
        The method: "lm", Levenberg–Marquardt with matrix-free Gauss–Newton steps (float64 only; stops when
        the validation loss stalls for ``patience`` iterations and keeps the best weights); "lbfgs", SciPy's
        L-BFGS, kept only if the validation loss improves.
    cg_steps : int
        With ``refine = "lm"``: the most conjugate-gradient iterations per Levenberg–Marquardt step. More give
        a step nearer the exact damped Gauss–Newton one at more cost per iteration; on the benchmark's
        SimpleRNN, 60 lowers the validation loss faster than 30 (or 15, or 120) for the first minute.
    precision : {"float32", "float64"}
        Floating-point type of the network, its training and its rollout.
    seed : int
        Seed of the initial weights and of the batch order (a study sets it per seed).
    """

    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 3e-3
    schedule: str = "cosine"
    clipnorm: float = 1.0
    patience: int = 20
    rollout_steps: int = 1
    horizons: tuple[int, ...] = ()
    refine_steps: int = 0
    refine: str = "lm"
    cg_steps: int = 30
    precision: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_training(self)


def _with_training(cls):
    """A network kind's config with the shared training settings documented after its own."""
    cls.__doc__ = cls.__doc__.replace("{training}", NetworkTraining.__doc__.split("----------\n", 1)[1].rstrip(" \n")
                                      + "\n")
    return cls


@_with_training
@dataclass(frozen=True, kw_only=True)
class RecurrentConfig(NetworkTraining):
    """A Keras recurrent step model and how to train it.

    Parameters
    ----------
    cell : {"simplernn", "gru", "lstm"}
    units : int
        Hidden units per layer.
    layers : int
        Stacked recurrent layers.
    window : int
        Inputs the model sees per prediction (from a zero state), in training and rollout alike.
    target : {"increment", "value"}
        What the network's output layer predicts. "increment" (physrnn's form): g, the standardised
        Euler-style increment. "value": the next observed value itself, standardised like the states — the
        common textbook recipe, kept to reproduce it (``studies/course.toml``). Both are trained and rolled out
        through the same update, ``g = (value − o_i)/Δt`` for the latter, so the loss differs only by a constant
        factor; what differs is what the network has to represent.
    angles : tuple of str
        Observed components that are angles (the pendulum's ``theta``): the network sees each as (cos, sin),
        so its increment is 2π-periodic in them, as the physics is; the state itself stays unwrapped.
    rotation : bool
        Keep the system's rotational symmetry (its declared ``ROTATIONS``: Kepler's position and velocity): each
        window is turned so that its latest position lies on the x axis (the network sees r, the radial and the
        tangential velocity) and the increment is turned back, so the step map turns with the orbit exactly.
{training}    """

    cell: str = "gru"
    units: int = 32
    layers: int = 1
    window: int = 8
    target: str = "increment"
    angles: tuple[str, ...] = ()
    rotation: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.rotation, bool):
            raise TypeError(f"rotation must be true or false, got {self.rotation!r}")
        _check_angles(self.angles)
        object.__setattr__(self, "angles", tuple(self.angles))
        if self.cell not in ("simplernn", "gru", "lstm"):
            raise ValueError(f"unknown recurrent cell {self.cell!r}; choose simplernn, gru or lstm")
        if self.target not in ("increment", "value"):
            raise ValueError(f"unknown target {self.target!r}; choose increment or value")
        for name in ("units", "layers", "window"):
            _check_int(name, getattr(self, name), 1)
        # Weights (and Adam's two moments and the gradient: four copies), from the recurrent kernels alone.
        gates = {"simplernn": 1, "gru": 3, "lstm": 4}[self.cell]
        weights = float(self.layers) * gates * float(self.units) * (float(self.units) + 1)
        check_memory(4 * weights * np.dtype(self.precision).itemsize,
                     f"units = {self.units} ({self.layers} {self.cell} layer(s), {weights:.3g} weights)",
                     "choose fewer units")

    @property
    def min_context(self) -> int:
        """The fewest true states a rollout starts from: one window."""
        return self.window


@dataclass(frozen=True, kw_only=True)
class EchoStateConfig:
    """An echo-state network.

    Parameters
    ----------
    units : int
        Reservoir size.
    spectral_radius : float
        Largest |eigenvalue| of the recurrent weight matrix (< 1 for the echo-state property, as a rule).
    leak_rate : float
        a in (0, 1]: h ← (1 − a) h + a tanh(W_in u + W h + b).
    input_scaling : float
        Scale of the uniform [−1, 1] input weights (inputs are standardised first).
    connectivity : float
        Fraction of non-zero recurrent weights, in (0, 1].
    bias : float
        Scale of the uniform [−1, 1] reservoir bias.
    ridge : float
        Tikhonov regularisation of the readout (on standardised features).
    washout : int
        Leading steps of each sequence left out of the readout fit; rollouts start after at least as many
        true states.
    input_to_readout : bool
        The readout sees the (standardised) input beside the reservoir state.
    precision : {"float32", "float64"}
        Floating-point type of the reservoir pass and the rollout (the readout is solved in float64).
    seed : int
        Seed of the reservoir's random weights (a study sets it per seed).
    """

    units: int = 200
    spectral_radius: float = 0.9
    leak_rate: float = 1.0
    input_scaling: float = 0.5
    connectivity: float = 0.1
    bias: float = 0.1
    ridge: float = 1e-8
    washout: int = 50
    input_to_readout: bool = True
    precision: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("units", self.units, 1)
        _check_int("washout", self.washout, 0)
        _check_int("seed", self.seed, 0)
        _check_positive("spectral_radius", self.spectral_radius)
        _check_positive("input_scaling", self.input_scaling)
        _check_positive("bias", self.bias, allow_zero=True)
        _check_positive("ridge", self.ridge, allow_zero=True)
        if not (isinstance(self.leak_rate, (int, float)) and 0 < self.leak_rate <= 1):
            raise ValueError(f"leak_rate must be in (0, 1], got {self.leak_rate!r}")
        if not (isinstance(self.connectivity, (int, float)) and 0 < self.connectivity <= 1):
            raise ValueError(f"connectivity must be in (0, 1], got {self.connectivity!r}")
        if not isinstance(self.input_to_readout, bool):
            raise TypeError(f"input_to_readout must be true or false, got {self.input_to_readout!r}")
        _check_precision(self.precision)
        # The reservoir matrix is held dense, with the readout's normal equations of the same size.
        check_memory(2 * 8 * float(self.units) ** 2, f"units = {self.units} (an echo-state reservoir)",
                     "choose fewer units")

    @property
    def min_context(self) -> int:
        """The fewest true states a rollout starts from: the washout, then one more."""
        return self.washout + 1


@dataclass(frozen=True, kw_only=True)
class LinearConfig:
    """The least-squares affine flow map on a window of inputs.

    Parameters
    ----------
    window : int
        Inputs the map sees (1: the current input only).
    ridge : float
        Tikhonov regularisation of the least-squares fit, on standardised inputs (0: the minimum-norm solution).
    """

    window: int = 1
    ridge: float = 0.0

    def __post_init__(self) -> None:
        _check_int("window", self.window, 1)
        _check_positive("ridge", self.ridge, allow_zero=True)

    @property
    def min_context(self) -> int:
        """The fewest true states a rollout starts from: one window."""
        return self.window


@_with_training
@dataclass(frozen=True, kw_only=True)
class SympNetConfig(NetworkTraining):
    """A step map symplectic for any weights (a SympNet of gradient modules: Jin et al., *Neural Networks* 132,
    2020): kicks p ← p − c ∇V_k(q, u) and drifts q ← q + c ∇T_k(p, u), alternating, each potential a one-layer
    network plus a quadratic. Trained as the recurrent kinds are.

    Parameters
    ----------
    units : int
        Hidden units of each potential's network (0: quadratic potentials alone, a linear symplectic map).
    layers : int
        Drifts in the composition, each between two kicks (1: kick, drift, kick, as Störmer–Verlet).
    positions : tuple of str
        The position components (empty: those the system declares,
        :meth:`simulators.PhysicalSystem.canonical_coordinates`).
    momenta : tuple of str
        The momentum conjugate to each position, in the same order (empty: the system's declaration).
    angles : tuple of str
        Positions that are angles (the pendulum's ``theta``): the kicks' potentials see each as (cos, sin), so
        the map is 2π-periodic in them, as the physics is; the state itself stays unwrapped.
    rotation : bool
        Keep the system's rotational symmetry (its declared ``ROTATIONS``: Kepler's position and velocity): the
        potentials see |q| and |p| alone, so the map turns with the orbit and conserves the angular momentum
        q × p exactly.
{training}    """

    units: int = 32
    layers: int = 2
    positions: tuple[str, ...] = ()
    momenta: tuple[str, ...] = ()
    angles: tuple[str, ...] = ()
    rotation: bool = False
    precision: str = "float64"

    def __post_init__(self) -> None:
        if not isinstance(self.rotation, bool):
            raise TypeError(f"rotation must be true or false, got {self.rotation!r}")
        for name in ("positions", "momenta"):
            _check_angles(getattr(self, name), name)
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.positions) != len(self.momenta):
            raise ValueError(f"positions {list(self.positions)} and momenta {list(self.momenta)} pair up one to one; "
                             "give as many of each (or neither, for the system's own)")
        _check_angles(self.angles)
        object.__setattr__(self, "angles", tuple(self.angles))
        _check_int("units", self.units, 0)
        _check_int("layers", self.layers, 1)
        super().__post_init__()

    #: The map reads the current state alone (its window), and the network's output is the increment.
    window: ClassVar[int] = 1
    target: ClassVar[str] = "increment"

    def split(self, system, state_names) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The observed columns of the positions and of their momenta: the settings', else the declaration of
        ``system`` (a :class:`simulators.PhysicalSystem` with the data's parameters; None for data given as
        arrays). Refused in one line where there is no split, or it is not the observed state."""
        names = tuple(state_names)
        positions, momenta = self.positions, self.momenta
        if not positions:
            if system is None:
                raise ValueError("data given as arrays declare no positions and momenta; set positions and momenta "
                                 "(for example positions = [\"q\"], momenta = [\"p\"])")
            declared = system.canonical_coordinates()
            if declared is None:
                why = ("declares no positions and momenta (its motion is not Hamiltonian)" if system.CANONICAL is None
                       else "has damped trajectories (damping > 0), whose flow is not symplectic")
                raise ValueError(f"a sympnet model needs Hamiltonian motion, and the {system.system} system {why}; "
                                 "choose another model kind")
            positions, momenta = declared
        paired = positions + momenta
        if sorted(paired) != sorted(names):
            raise ValueError(f"a sympnet model steps positions {list(positions)} and momenta {list(momenta)}, each "
                             f"observed once, but the data observe {', '.join(names)}; observe the full state")
        not_positions = [a for a in self.angles if a not in positions]
        if not_positions:
            raise ValueError(f"angles {', '.join(not_positions)} are not positions ({', '.join(positions)}); only a "
                             "position can be an angle")
        if self.rotation:
            declared = getattr(system, "ROTATIONS", ())
            if len(positions) != 2 or set(declared) != {tuple(positions), tuple(momenta)} or self.angles:
                name = "these data's system" if system is None else f"the {system.system} system"
                raise ValueError(f"rotation = true turns the positions {list(positions)} and the momenta "
                                 f"{list(momenta)} as two planar vectors, which {name} does not declare (its "
                                 f"rotations: {[list(v) for v in declared] or 'none'}); set rotation = false")
        return tuple(names.index(n) for n in positions), tuple(names.index(n) for n in momenta)

    def check_system(self, system, state_names) -> None:
        """Refuse, before any work, a system and observation this model cannot take (see :meth:`split`)."""
        self.split(system, state_names)

    @property
    def min_context(self) -> int:
        """A rollout starts from one true state: the map needs nothing else."""
        return 1


#: The ridges an NVAR tries when none is given: every decade from 1e-12 to 1.
NVAR_RIDGES = tuple(10.0**e for e in range(-12, 1))


@dataclass(frozen=True, kw_only=True)
class NVARConfig:
    """Next-generation reservoir computing (Gauthier et al., *Nat. Commun.* 12:5564, 2021): a ridge readout on
    a constant, a delay embedding and its monomials.

    Parameters
    ----------
    delay : int
        k, the time-delay taps: the linear part holds the inputs at steps i, i − s, …, i − (k − 1)s.
    skip : int
        s, the steps between taps.
    order : int
        p, the degree of the unique monomials of the linear part that form the nonlinear part (1: none).
    constant : bool
        A constant term (an unpenalised intercept).
    ridge : float
        Tikhonov regularisation of the readout, on the raw features as in the paper (negative: chosen from
        ``ridges`` on the closed-loop error of the validation trajectories, which a one-step residual cannot
        replace: on Lorenz-63 the ridge it prefers diverges).
    ridges : tuple of float
        The ridges tried when ``ridge`` is negative.
    select_steps : int
        Closed-loop steps of each validation trajectory the ridge is judged on (0: all of them).
    angles : tuple of str
        Observed components that are angles: the features see each as (cos, sin), as the recurrent kinds do.
    """

    delay: int = 2
    skip: int = 1
    order: int = 2
    constant: bool = True
    ridge: float = -1.0
    ridges: tuple[float, ...] = NVAR_RIDGES
    select_steps: int = 0
    angles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_angles(self.angles)
        object.__setattr__(self, "angles", tuple(self.angles))
        for name in ("delay", "skip", "order"):
            _check_int(name, getattr(self, name), 1)
        _check_int("select_steps", self.select_steps, 0)
        if not isinstance(self.constant, bool):
            raise TypeError(f"constant must be true or false, got {self.constant!r}")
        _check_choice_or_grid("ridge", self.ridge, self.ridges)
        object.__setattr__(self, "ridges", tuple(float(r) for r in self.ridges))

    @property
    def min_context(self) -> int:
        """The fewest true states a rollout starts from: the span of the taps."""
        return (self.delay - 1) * self.skip + 1


#: The thresholds SINDy tries when none is given.
SINDY_THRESHOLDS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1)


@dataclass(frozen=True, kw_only=True)
class SINDyConfig:
    """Sparse identification of the vector field (SINDy, on PySINDy), rolled out by RK4 on what it identified.

    Parameters
    ----------
    library : {"declared", "polynomial"}
        "declared": monomials of the state, the known inputs and the terms the system declares (the pendulum's
        sin θ, Kepler's x/r³: :meth:`simulators.PhysicalSystem.library`); "polynomial": monomials of the
        state and the known inputs alone (what a user without that knowledge fits).
    degree : int
        The monomials' highest degree (0: the degree the system declares for its vector field).
    difference_order : int
        Order of the finite differences that estimate the derivative from the states (PySINDy's default is 2,
        which loses 10–100× at the studies' Δt against 4).
    threshold : float
        The sequential thresholded least squares' cut (STLSQ; negative: chosen from ``thresholds`` on the
        closed-loop error of the validation trajectories).
    thresholds : tuple of float
        The cuts tried when ``threshold`` is negative.
    alpha : float
        STLSQ's ridge while it selects terms (the kept terms are refitted without it).
    substeps : int
        RK4 steps on the identified field per Δt of the data.
    select_steps : int
        Closed-loop steps of each validation trajectory the threshold is judged on (0: all of them).
    """

    library: str = "declared"
    degree: int = 0
    difference_order: int = 4
    threshold: float = -1.0
    thresholds: tuple[float, ...] = SINDY_THRESHOLDS
    alpha: float = 1e-6
    substeps: int = 1
    select_steps: int = 0

    def __post_init__(self) -> None:
        if self.library not in ("declared", "polynomial"):
            raise ValueError(f"unknown library {self.library!r}; choose declared or polynomial")
        _check_int("degree", self.degree, 0)
        _check_int("difference_order", self.difference_order, 1)
        _check_int("substeps", self.substeps, 1)
        _check_int("select_steps", self.select_steps, 0)
        _check_choice_or_grid("threshold", self.threshold, self.thresholds)
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        _check_positive("alpha", self.alpha, allow_zero=True)

    @property
    def min_context(self) -> int:
        """A rollout starts from one true state: the identified field needs nothing else."""
        return 1


@dataclass(frozen=True, kw_only=True)
class NoConfig:
    """Physics baselines have nothing to set."""

    @property
    def min_context(self) -> int:
        """A rollout starts from one true state."""
        return 1


def _check_choice_or_grid(name: str, value: Any, grid: Any) -> None:
    """A regularisation given (a number >= 0) or to be chosen (negative) from ``grid``, a list of numbers >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number (>= 0, or negative to choose it from {name}s), got "
                         f"{value!r}")
    if not isinstance(grid, (list, tuple)) or not grid:
        raise ValueError(f"{name}s must be a list of numbers >= 0 such as [1e-8, 1e-6], got {grid!r}")
    for each in grid:
        _check_positive(f"each of {name}s", each, allow_zero=True)


def _check_angles(angles, name: str = "angles") -> None:
    if isinstance(angles, str) or not all(isinstance(a, str) and a for a in angles):
        raise ValueError(f"{name} must be a list of component names such as [\"theta\"], got {angles!r}")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose float32 or float64")


# ----------------------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class ModelKind:
    """One model kind: its name, its settings, where its class lives, and what it is.

    ``target`` is the class itself, or ``"module:Class"`` (imported on first use, so listing and validating
    import nothing heavy). ``fixed`` are settings the kind pins (a GRU is the recurrent config with
    ``cell = "gru"``).
    """

    kind: str
    config_class: type
    target: Any
    summary: str = ""
    fixed: Mapping[str, Any] = None  # type: ignore[assignment]

    @property
    def settings(self) -> list[str]:
        """The settings a user may give (the config's fields less the pinned ones)."""
        return [f.name for f in fields(self.config_class) if f.name not in (self.fixed or {})]


_MODELS: dict[str, ModelKind] = {}


def register_model(kind: str, config_class: type, target: Any, *, summary: str = "",
                   fixed: Mapping[str, Any] | None = None) -> ModelKind:
    """Add a model kind to the registry (re-registering a name replaces it); returns its entry."""
    if not isinstance(kind, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", kind):
        raise ValueError(f"a model kind is a lower-case name such as 'gru', got {kind!r}")
    entry = ModelKind(kind, config_class, target, summary, dict(fixed or {}))
    _MODELS[kind] = entry
    return entry


def model_kinds() -> tuple[str, ...]:
    """Every registered model kind, in registration order."""
    return tuple(_MODELS)


def model_kind(kind: str) -> ModelKind:
    """The registry entry of ``kind``; an unknown kind is a ValueError listing the known ones."""
    try:
        return _MODELS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model type {kind!r}; choose one of {', '.join(_MODELS)}") from None


def model_config(kind: str, **settings: Any):
    """The validated config of a ``kind`` model with these settings (no TensorFlow is imported).

    Unknown settings are a ValueError naming them and the allowed ones; bad values the config's own error.
    """
    entry = model_kind(kind)
    allowed = entry.settings
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"unknown setting{'s' if len(unknown) > 1 else ''} for a {kind} model: {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed) or 'none'}")
    return entry.config_class(**{**settings, **entry.fixed})


def model_class(kind: str) -> type:
    """The class of a ``kind`` model (imported now if it was registered as ``"module:Class"``)."""
    target = model_kind(kind).target
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module, __package__), name)
    return target


def describe_settings(kind: str) -> list[tuple[str, Any, str]]:
    """(name, default, first line of its meaning) for each setting of ``kind``, read from the config class's
    NumPy-style docstring (its ``Parameters`` section) and its defaults."""
    entry = model_kind(kind)
    doc = entry.config_class.__doc__ or ""
    meaning: dict[str, str] = {}
    for match in re.finditer(r"^    (\w+) : [^\n]*\n((?:        [^\n]*\n?)*)", doc, flags=re.M):
        text = " ".join(line.strip() for line in match.group(2).splitlines())
        meaning[match.group(1)] = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    out = []
    # In the docstring's order (a kind's own settings, then those it shares), any undocumented ones last.
    order = {name: i for i, name in enumerate(meaning)}
    for f in sorted(fields(entry.config_class), key=lambda f: order.get(f.name, len(order))):
        if f.name in entry.fixed:
            continue
        default = None if f.default is MISSING else f.default
        out.append((f.name, default, meaning.get(f.name, "")))
    return out


_RNN_SUMMARY = "Keras {} step model on a window of past inputs (Adam, then optional Levenberg–Marquardt)"
register_model("simplernn", RecurrentConfig, ".recurrent:SimpleRNN", summary=_RNN_SUMMARY.format("SimpleRNN"),
               fixed={"cell": "simplernn"})
register_model("gru", RecurrentConfig, ".recurrent:GRU", summary=_RNN_SUMMARY.format("GRU"), fixed={"cell": "gru"})
register_model("lstm", RecurrentConfig, ".recurrent:LSTM", summary=_RNN_SUMMARY.format("LSTM"), fixed={"cell": "lstm"})
register_model("sympnet", SympNetConfig, ".symplectic:SympNet",
               summary="symplectic step map for Hamiltonian systems: kicks and drifts by learned potentials")
register_model("esn", EchoStateConfig, ".esn:EchoStateNetwork",
               summary="echo-state network: fixed random reservoir, ridge readout in closed form")
register_model("linear", LinearConfig, ".linear:LinearFlowMap",
               summary="least-squares affine map on a window of inputs (exact for a linear system)")
register_model("nvar", NVARConfig, ".nvar:NVAR",
               summary="next-generation reservoir: ridge readout on a delay embedding and its monomials (NumPy)")
register_model("sindy", SINDyConfig, ".sindy:SINDy",
               summary="sparse identification of the vector field (PySINDy's STLSQ), rolled out by RK4")
register_model("persistence", NoConfig, ".baselines:Persistence", summary="no change: g = 0")
register_model("euler", NoConfig, ".baselines:EulerBaseline",
               summary="one explicit Euler step of the true equations at the same dt")
register_model("rk4", NoConfig, ".baselines:RK4Baseline",
               summary="one classical RK4 step of the true equations at the same dt")
