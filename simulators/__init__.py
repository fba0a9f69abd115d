"""physrnn's physics layer: exact solutions, batched integrators and trajectory files (NumPy/SciPy/h5py only).

>>> from simulators import LinearOscillator, solve
>>> osc = LinearOscillator(damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
>>> states = solve(osc, [[0.7, -0.3]], np.arange(2001) * 0.05)   # (1, 2001, 2), closed form

Systems are plug-ins (:mod:`simulators.system`): a system is one module declaring a
:class:`~simulators.system.PhysicalSystem` subclass and its ensemble parameters, registered with
:func:`register_system`; every other part of physrnn finds it by name through :func:`get_system`.
"""

# The registry lists systems in the order their modules are imported: the oscillator first.
from .oscillator import LinearOscillator, OscillatorParams, steady_state_response  # isort: skip
from .eigen import (EigenFlow, EigenParams, FlowEigenpairs, convergence_time, flow_eigenpairs, random_symmetric,
                    rayleigh_quotient)
from .pendulum import Pendulum, PendulumParams  # isort: skip
from .duffing import Duffing, DuffingParams  # isort: skip
from .kepler import Kepler, KeplerParams  # isort: skip
from .vanderpol import VanDerPol, VanDerPolParams  # isort: skip
from .lotka_volterra import LotkaVolterra, LotkaVolterraParams  # isort: skip
from .lorenz import Lorenz63, Lorenz63Params  # isort: skip
from .ensemble import EnsembleConfig, generate, simulate_to_file, system_from_params
from .integrate import METHODS, LyapunovEstimate, euler_step, flow_jacobian, lyapunov_exponent, rk4_step, solve
from .params import EnsembleParams, ParamSpec
from .system import Library, PhysicalSystem, get_system, register_system, system_names
from .trajectory_file import (SCHEMA, SCHEMA_VERSION, Trajectories, TrajectoryFileError, read_trajectories,
                              write_trajectories)

__all__ = [
    "METHODS", "SCHEMA", "SCHEMA_VERSION", "Duffing", "DuffingParams", "EigenFlow", "EigenParams", "EnsembleConfig", "EnsembleParams",
    "FlowEigenpairs", "Kepler", "KeplerParams", "Library", "Lorenz63", "Lorenz63Params", "LyapunovEstimate", "LinearOscillator", "LotkaVolterra", "LotkaVolterraParams", "OscillatorParams", "ParamSpec", "Pendulum", "PendulumParams", "PhysicalSystem", "Trajectories", "VanDerPol", "VanDerPolParams",
    "TrajectoryFileError", "convergence_time", "euler_step", "flow_eigenpairs", "flow_jacobian", "generate", "get_system", "lyapunov_exponent",
    "random_symmetric", "rayleigh_quotient", "read_trajectories", "register_system", "rk4_step",
    "simulate_to_file", "solve", "steady_state_response", "system_from_params", "system_names",
    "write_trajectories",
]
