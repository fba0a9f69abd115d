"""Small study configs shared by tests of the front door and of the extension points."""

#: A tiny free-oscillator study of baselines only (seconds to run); append [models.*] or [targets] tables.
TINY_STUDY = """
[study]
name = "tiny"
seeds = [0]
baselines = ["euler", "rk4", "linear"]
[features]
observation = "full"
[diagnostics]
long_steps = 300
[train]
system = "oscillator"
n_traj = 4
dt = 0.1
t_end = 4.0
seed = 1
params = { damping = 0.3 }
[test]
system = "oscillator"
n_traj = 2
dt = 0.1
t_end = 6.0
seed = 2
params = { damping = 0.3 }
[models]
"""
