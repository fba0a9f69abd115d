"""Small learning problems shared by the physrnn tests (session-scoped: simulated once)."""
import pytest

from physrnn.data import FeatureSpec, build_step_data
from simulators.ensemble import EnsembleConfig, generate

DRIVEN = {"system": "oscillator", "dt": 0.05, "seed": 1,
          "params": {"damping": 0.2, "drive_amplitude": 0.5, "drive_frequency": 1.3}}


def _data(spec, **overrides):
    return build_step_data(generate(EnsembleConfig.from_dict({**DRIVEN, **overrides})), spec)


@pytest.fixture(scope="session")
def full_spec():
    return FeatureSpec(system="oscillator", observation="full")


@pytest.fixture(scope="session")
def small_train(full_spec):
    return _data(full_spec, n_traj=6, t_end=10.0)


@pytest.fixture(scope="session")
def small_val(full_spec):
    return _data(full_spec, n_traj=2, t_end=10.0, seed=2)


@pytest.fixture(scope="session")
def held_out(full_spec):
    """The acceptance start (0.7, −0.3), over a longer horizon than training."""
    params = {**DRIVEN["params"], "x0": 0.7, "v0": -0.3}
    return _data(full_spec, n_traj=1, t_end=20.0, params=params)


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of 2 single-threaded worker processes (what the acceptance asks for), shared by the tests."""
    from physrnn.cluster import connect

    with connect(workers=2) as client:
        yield client
