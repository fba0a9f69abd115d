"""Shared fixtures: small simulated data, built once per session."""
import numpy as np
import pytest

from simulators.ensemble import EnsembleConfig, generate


@pytest.fixture(scope="session")
def driven_config() -> EnsembleConfig:
    return EnsembleConfig.from_dict({
        "system": "oscillator", "n_traj": 12, "dt": 0.05, "t_end": 10.0, "seed": 7,
        "params": {"damping": {"uniform": [0.0, 0.5]}, "drive_amplitude": 0.5,
                   "drive_frequency": {"uniform": [0.5, 1.5]}, "drive_phase": {"uniform": [0.0, 6.28]}},
    })


@pytest.fixture(scope="session")
def driven(driven_config):
    return generate(driven_config)


@pytest.fixture(scope="session")
def eigen_config() -> EnsembleConfig:
    return EnsembleConfig.from_dict({
        "system": "eigen", "n_traj": 8, "dt": 0.05, "n_steps": 101, "seed": 3,
        "params": {"size": 5, "shared_matrix": False, "initial_norm": {"uniform": [0.5, 1.5]}},
    })


@pytest.fixture(scope="session")
def eigen(eigen_config):
    return generate(eigen_config)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
