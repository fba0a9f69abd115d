"""physrnn's physics layer: exact solutions, batched integrators and trajectory files (NumPy/SciPy/h5py only).

>>> from simulators import LinearOscillator, solve
>>> osc = LinearOscillator(damping=0.2, drive_amplitude=0.5, drive_frequency=1.3)
>>> states = solve(osc, [[0.7, -0.3]], np.arange(2001) * 0.05)   # (1, 2001, 2), closed form
"""

from .eigen import (EigenFlow, FlowEigenpairs, convergence_time, flow_eigenpairs, random_symmetric,
                    rayleigh_quotient)
from .ensemble import EnsembleConfig, generate, simulate_to_file, system_from_params
from .integrate import METHODS, solve
from .oscillator import LinearOscillator, steady_state_response
from .trajectory_file import (SCHEMA, SCHEMA_VERSION, Trajectories, TrajectoryFileError, read_trajectories,
                              write_trajectories)

__all__ = [
    "METHODS", "SCHEMA", "SCHEMA_VERSION", "EigenFlow", "EnsembleConfig", "FlowEigenpairs", "LinearOscillator",
    "Trajectories", "TrajectoryFileError", "convergence_time", "flow_eigenpairs", "generate",
    "random_symmetric", "rayleigh_quotient", "read_trajectories", "simulate_to_file", "solve",
    "steady_state_response", "system_from_params", "write_trajectories",
]
