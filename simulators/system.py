"""Systems are plug-ins: one base class says everything a system declares, one registry maps names to systems.

A system is a frozen dataclass holding an *ensemble* of parameter sets (one per trajectory, or one shared),
written in one module with its exact solution and its ensemble parameters, and registered with one line::

    @register_system
    @dataclass(frozen=True, kw_only=True, eq=False)
    class DampedRotation(PhysicalSystem):
        system = "rotation"                      # the name configs, files and the command line use
        state_names = ("x", "y")
        state_units = ("L", "L")
        PARAMETERS = ("decay_rate", "angular_frequency")
        Params = RotationParams                  # its ensemble specs, an EnsembleParams subclass
        decay_rate: ArrayLike = 0.1
        angular_frequency: ArrayLike = 1.0

        def __post_init__(self): ...             # validate, broadcast to (n_traj,), set n_traj
        def rhs(self, t, state): ...             # batched: (n_traj, n_state) -> (n_traj, n_state)
        def jacobian(self, t, state): ...        # ∂rhs/∂state: (n_traj, n_state) -> (n_traj, n_state, n_state)
        def exact(self, initial_state, time): ...   # (n_traj, n_state), (n_steps,) -> (n_traj, n_steps, n_state)

Everything else has a default here that a system overrides where it has more to say: its known inputs
(``drive_names``, :meth:`~PhysicalSystem.drive`, :meth:`~PhysicalSystem.drive_features`), its invariants
(:meth:`~PhysicalSystem.invariants`), its equilibria (:meth:`~PhysicalSystem.equilibria`), a characteristic time (:meth:`~PhysicalSystem.characteristic_period`),
which physical analysis of a rollout applies (:meth:`~PhysicalSystem.physics_analysis`), what can be observed
(``OBSERVATIONS``), which parameters a parameter-aware model may be given (``MODEL_PARAMETERS``), and how a
test set breaks down (``GROUPINGS``, :meth:`~PhysicalSystem.groups`). Ensemble configs, trajectory files,
``physrnn simulate``, features, studies, analyses and the command line's choices all read them from here.

A system without a closed form leaves :meth:`~PhysicalSystem.exact` to the default, which refuses; its
ensembles are then solved with ``method = "reference"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Library", "PhysicalSystem", "get_system", "register_system", "system_names"]

_REGISTRY: dict[str, type[PhysicalSystem]] = {}


@dataclass(frozen=True)
class Library:
    """The candidate terms that hold a system's vector field, for a sparse regression (``physrnn``'s SINDy):
    every monomial up to ``degree`` in the state, the known inputs a model is given (drive features and
    parameters) and ``terms``, named functions of the state (..., n_state) -> (...) that no polynomial holds
    (an angle's sine, a central force's x/r³). A term that takes the array namespace as ``xp`` (NumPy by
    default: ``lambda s, xp=np: xp.sin(s[..., 0])``) also runs inside a compiled loop."""

    degree: int
    terms: Mapping[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, eq=False)
class PhysicalSystem:
    """The base of every system (see the module docstring for what a subclass declares)."""

    #: The registry name (``system = "oscillator"`` in configs and files).
    system: ClassVar[str]
    state_names: ClassVar[tuple[str, ...]]
    state_units: ClassVar[tuple[str, ...]]
    #: Constructor parameters, each with leading dimension n_traj once built (used by take/broadcast/from_params).
    PARAMETERS: ClassVar[tuple[str, ...]] = ()
    #: The ensemble parameter specs (an :class:`~simulators.params.EnsembleParams` subclass).
    Params: ClassVar[type]
    #: Observation modes: name -> the state components observed.
    OBSERVATIONS: ClassVar[Mapping[str, tuple[int, ...] | None]] = {"full": None}
    #: Known-input feature modes a model may be given (see :meth:`drive_features`); the first is the default.
    DRIVE_FEATURES: ClassVar[tuple[str, ...]] = ("none",)
    #: Parameters a parameter-aware model may see at every step (one column per entry, or per term).
    MODEL_PARAMETERS: ClassVar[tuple[str, ...]] = ()
    #: System-specific ways to break a test set down (beside any parameter); see :meth:`groups`.
    GROUPINGS: ClassVar[tuple[str, ...]] = ()
    #: Whether ``t_end = "auto"`` is meaningful (see :meth:`auto_t_end`).
    AUTO_T_END: ClassVar[bool] = False

    n_traj: int = field(init=False)  # set by each subclass's __post_init__

    def set_parameters(self, **values: ArrayLike) -> None:
        """For a subclass's ``__post_init__``: store each parameter as a read-only float64 array with one entry
        per trajectory (a scalar, or one value per trajectory), and set ``n_traj``.

        Each value must be finite; parameters that disagree on the number of trajectories are a ValueError
        naming them. Range checks (a positive frequency, say) are the subclass's, before or after.
        """
        arrays = {}
        for name, value in values.items():
            try:
                a = np.atleast_1d(np.asarray(value, dtype=np.float64))
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be a real number or an array of them, got {value!r}") from None
            if not np.isfinite(a).all():
                raise ValueError(f"{name} = {value!r} is not finite; give finite numbers")
            arrays[name] = a
        sizes = {a.shape[0] for a in arrays.values()} - {1}
        if len(sizes) > 1:
            raise ValueError(f"parameters disagree on the number of trajectories: "
                             f"{ {n: a.shape[0] for n, a in arrays.items()} }; give one value or one per trajectory")
        n_traj = sizes.pop() if sizes else 1
        for name, a in arrays.items():
            a = np.broadcast_to(a, (n_traj,) + a.shape[1:]).copy()
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "n_traj", n_traj)

    # ------------------------------------------------------------------ description
    @property
    def n_state(self) -> int:
        return len(self.state_names)

    @property
    def is_driven(self) -> bool:
        """Whether the system has a known, time-dependent input (written to a file's ``/drive``)."""
        return False

    def params(self) -> dict[str, np.ndarray]:
        """What a trajectory file records under ``/params`` (the constructor parameters, and derived facts)."""
        return {name: getattr(self, name) for name in self.PARAMETERS}

    @classmethod
    def from_params(cls, params: Mapping[str, np.ndarray]) -> PhysicalSystem:
        """Rebuild the system (one parameter set per trajectory) from a trajectory file's ``/params``."""
        missing = [name for name in cls.PARAMETERS if name not in params]
        if missing:
            raise ValueError(f"the {cls.system} system needs parameters {', '.join(missing)}, which the data lack")
        return cls(**{name: params[name] for name in cls.PARAMETERS})

    def take(self, index) -> PhysicalSystem:
        """The sub-ensemble of trajectories ``index`` (a slice or an integer array)."""
        if self.n_traj == 1:
            return self
        return type(self)(**{name: getattr(self, name)[index] for name in self.PARAMETERS})

    def broadcast(self, n_traj: int) -> PhysicalSystem:
        """The same system repeated for ``n_traj`` trajectories (only from an ensemble of one)."""
        if n_traj == self.n_traj:
            return self
        if self.n_traj != 1:
            raise ValueError(f"cannot broadcast an ensemble of {self.n_traj} {self.system} systems to {n_traj} "
                             "trajectories")
        return type(self)(**{name: np.repeat(getattr(self, name), n_traj, axis=0) for name in self.PARAMETERS})

    # ------------------------------------------------------------------ dynamics
    def rhs(self, t: float, state: np.ndarray) -> np.ndarray:
        """ds/dt at time ``t`` for ``state`` of shape (n_traj, n_state)."""
        raise NotImplementedError

    def jacobian(self, t: float, state: np.ndarray) -> np.ndarray:
        """∂f/∂s at time ``t`` for ``state`` (n_traj, n_state): ndarray (n_traj, n_state, n_state).

        The variational equations dΦ/dt = J(t, s(t)) Φ, Φ(t0) = I, give the Jacobian of the flow map
        (:func:`simulators.integrate.flow_jacobian`), against which a learned step's Jacobian is read.
        """
        raise NotImplementedError(f"the {self.system} system does not declare its Jacobian (jacobian(t, state))")

    def check_start(self, initial_state: ArrayLike, time: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """For an :meth:`exact`: the time grid and the starts (n_traj, n_state), checked against this ensemble
        (a start per parameter set, or any number of starts for a single set: broadcast with :meth:`broadcast`)."""
        from ._validation import check_time_grid

        t = check_time_grid(time)
        s0 = np.asarray(initial_state, dtype=np.float64)
        if s0.ndim != 2 or s0.shape[1] != self.n_state or self.n_traj not in (1, s0.shape[0]):
            raise ValueError(f"initial_state must have shape ({self.n_traj}, {self.n_state}), got {s0.shape}")
        return t, s0

    def exact(self, initial_state: ArrayLike, time: ArrayLike) -> np.ndarray:
        """The closed-form solution, ndarray of shape (n_traj, n_steps, n_state), where one exists."""
        raise ValueError(f"the {self.system} system has no closed form; use method = \"reference\"")

    def reference_method(self) -> str:
        """The SciPy method of the reference integrator for this ensemble (an implicit one where it is stiff)."""
        return "DOP853"

    def auto_t_end(self, initial_state: np.ndarray) -> float:
        """A horizon chosen from the system and its starts (for ``t_end = "auto"``, where ``AUTO_T_END``)."""
        raise ValueError(f't_end = "auto" is not defined for the {self.system} system; give a number')

    # ------------------------------------------------------------------ known inputs
    def drive_names(self) -> tuple[str, ...]:
        """Names of the channels of :meth:`drive` (empty: no known input)."""
        return ()

    def drive(self, time: ArrayLike) -> np.ndarray:
        """The known input at ``time``, ndarray of shape (n_traj, n_times, n_drive)."""
        return np.zeros((self.n_traj, np.size(time), 0))

    def drive_features(self, time: np.ndarray, mode: str) -> np.ndarray:
        """Known-input features a model is given at every step, ndarray of shape (n_traj, n_times, n_features)."""
        return np.zeros((self.n_traj, np.size(time), 0))

    def per_trajectory(self, state: np.ndarray, *names: str) -> list[np.ndarray]:
        """Parameters shaped to broadcast against ``state[..., 0]`` (a single state uses the first set)."""
        return [getattr(self, n)[0] if state.ndim == 1 else getattr(self, n) for n in names]

    # ------------------------------------------------------------------ physics
    def invariants(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Conserved (or bookkept) quantities: name -> function of states (n_traj, ..., n_state) -> (n_traj, ...).

        The learning side scores each one's error along a rollout (e.g. the oscillator's energy).
        """
        return {}

    def conserves_invariants(self) -> np.ndarray:
        """Which trajectories keep every one of :meth:`invariants` constant (bool, (n_traj,)); the others only
        bookkeep them (a damped oscillator's energy). A reference solution's certificate reports their drift."""
        return np.zeros(self.n_traj, dtype=bool)

    def equilibria(self) -> dict[str, np.ndarray]:
        """The equilibria of the free system (no drive): name -> states (n_traj, n_state), a row of NaN for a
        trajectory whose parameters (or drive) give it no such point. The diagnostics linearise a learned step
        map there, against the exact flow map's Jacobian (the small-oscillation frequency, say)."""
        return {}

    def _at(self, point: ArrayLike, where: ArrayLike = True) -> np.ndarray:
        """For :meth:`equilibria`: ``point`` (n_state,) or (n_traj, n_state) per trajectory, NaN where not ``where``."""
        rows = np.broadcast_to(np.asarray(point, dtype=np.float64), (self.n_traj, self.n_state))
        return np.where(np.broadcast_to(np.asarray(where), (self.n_traj,))[:, None], rows, np.nan)

    #: Positions and momenta: the state's split in which the motion, where it has no friction, is Hamiltonian
    #: with the standard symplectic form (q̇ = ∂H/∂p, ṗ = −∂H/∂q, a known drive allowed); None: no such split.
    #: Symplectic model kinds read it through :meth:`canonical_coordinates`.
    CANONICAL: ClassVar[tuple[tuple[str, ...], tuple[str, ...]] | None] = None

    #: Planar vectors of the state (pairs of names) that the system's rotational symmetry turns together: its
    #: field and flow commute with rotating each of them by the same angle (Kepler's position and velocity).
    ROTATIONS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def hamiltonian_trajectories(self) -> np.ndarray:
        """Which trajectories move by Hamilton's equations in ``CANONICAL`` (bool, (n_traj,)): all of them where
        the system declares the split and has no friction to say otherwise."""
        return np.full(self.n_traj, self.CANONICAL is not None)

    def canonical_coordinates(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(positions, momenta) by state name where every trajectory's flow is Hamiltonian in them (its step
        map symplectic), else None (a damped trajectory's flow contracts phase-space area)."""
        return self.CANONICAL if self.hamiltonian_trajectories().all() else None

    #: The degree of the vector field as a polynomial in the state, the drive features and the
    #: :meth:`library_terms` (None: the system declares no library).
    LIBRARY_DEGREE: ClassVar[int | None] = None
    #: The degrees a parameter adds when a model is given it (ω0² x: ``natural_frequency`` adds 2).
    LIBRARY_PARAMETER_DEGREE: ClassVar[Mapping[str, int]] = {}

    @classmethod
    def library_terms(cls) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Named functions of the state beside the polynomials in :meth:`library` (none by default)."""
        return {}

    @classmethod
    def library(cls, parameters: tuple[str, ...] = ()) -> Library | None:
        """The candidate terms that hold this system's vector field when a model is given ``parameters`` (see
        :class:`Library`), or None where the system declares none."""
        if cls.LIBRARY_DEGREE is None:
            return None
        extra = max((cls.LIBRARY_PARAMETER_DEGREE.get(p, 0) for p in parameters), default=0)
        return Library(cls.LIBRARY_DEGREE + extra, cls.library_terms())

    def characteristic_period(self) -> np.ndarray | None:
        """One time per trajectory to express valid times in (a period), ndarray (n_traj,); None if none."""
        return None

    def may_be_chaotic(self) -> bool:
        """Whether some trajectory may be chaotic, so valid times are also read in Lyapunov times. An autonomous
        flow in the plane cannot be (Poincaré–Bendixson), nor can a linear one; a driven nonlinear one can."""
        return False

    def physics_analysis(self, observed: tuple[str, ...]) -> str | None:
        """The name of the physical analysis of a rollout that applies (see ``physrnn.analysis``), if any."""
        return None

    def groups(self, by: str) -> dict[str, np.ndarray]:
        """Boolean masks (n_traj,) per label for a grouping in ``GROUPINGS``."""
        raise ValueError(f"the {self.system} system has no grouping {by!r}")


def register_system(cls: type[PhysicalSystem]) -> type[PhysicalSystem]:
    """Add a system class to the registry under ``cls.system`` (usable as a class decorator).

    Re-registering the same name replaces the entry (so a notebook can redefine a system).
    """
    if not (isinstance(cls, type) and issubclass(cls, PhysicalSystem)):
        raise TypeError(f"register_system takes a PhysicalSystem subclass, got {cls!r}")
    name = getattr(cls, "system", None)
    if not isinstance(name, str) or not name.isidentifier() and not name.replace("-", "_").isidentifier():
        raise ValueError(f"{cls.__name__}.system must be a name such as 'pendulum', got {name!r}")
    for attr in ("state_names", "state_units", "Params"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__name__} must declare {attr}")
    _REGISTRY[name] = cls
    return cls


def get_system(name: str) -> type[PhysicalSystem]:
    """The system class registered as ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown system {name!r}; choose one of {', '.join(system_names())}") from None


def system_names() -> tuple[str, ...]:
    """Every registered system's name, in registration order."""
    return tuple(_REGISTRY)
