"""Rollouts that cannot cheat, training that cannot see the test set.

A closed-loop rollout may read the true observed states of its context and the known inputs, nothing else:
given data whose states after the context are NaN (or nonsense), every model kind must roll out exactly as on
the clean data. A model trained on a file whose held-out trajectories are poisoned must be bit for bit the
model trained on the clean file, through the Python API and through ``physrnn train``.
"""

import h5py
import numpy as np
import pytest

from physrnn.cli import main
from physrnn.data import FeatureSpec, StepData, build_step_data, split_by_trajectory
from physrnn.models import build_model, load_model, model_kinds
from simulators import EnsembleConfig, read_trajectories, simulate_to_file

#: Small settings per kind, so that every registered kind is rolled out (a new kind needs an entry here).
SMALL = {"simplernn": {"units": 4, "window": 3, "epochs": 1}, "gru": {"units": 4, "window": 3, "epochs": 1},
         "lstm": {"units": 4, "window": 3, "epochs": 1}, "esn": {"units": 30, "washout": 10},
         "linear": {"window": 2}, "nvar": {"delay": 2, "skip": 2},
         "sindy": {"library": "polynomial", "degree": 2}, "persistence": {}, "euler": {}, "rk4": {},
         # The shared data are damped: a symplectic map fits them only when told the split (a user's choice).
         "sympnet": {"units": 4, "epochs": 1, "positions": ["x"], "momenta": ["v"]}}


def _poisoned(data: StepData, context: int, value: float = np.nan) -> StepData:
    """The same data with every true state after the context (observed and full) replaced by ``value``."""
    observed, states = data.observed.copy(), data.states.copy()
    observed[:, context:] = value
    states[:, context:] = value
    return StepData(observed, data.known, data.time, data.dt, data.spec, data.trajectories, data.system, states,
                    data.state_names)


def test_every_model_kind_has_small_settings_here():
    assert set(model_kinds()) <= set(SMALL), "add the new kind to SMALL so its rollout is checked"


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_a_rollout_never_reads_the_truth_after_its_context(kind, small_train, small_val, held_out):
    model = build_model(kind, **SMALL[kind]).fit(small_train, small_val, verbose=0)
    for context in (model.min_context, model.min_context + 15):
        clean = model.rollout(held_out, context=context)
        for value in (np.nan, 1e3):  # NaN would propagate; a large finite value would bend the rollout
            cheat = model.rollout(_poisoned(held_out, context, value), context=context)
            np.testing.assert_array_equal(cheat.observed, clean.observed, err_msg=f"{kind}, context {context}")
            np.testing.assert_array_equal(cheat.diverged_at, clean.diverged_at)


FRACTIONS, SPLIT_SEED = (0.5, 0.25, 0.25), 3
TRAIN, VALIDATION, TEST = split_by_trajectory(12, FRACTIONS, seed=SPLIT_SEED)


@pytest.fixture(scope="module")
def clean_file(tmp_path_factory):
    return simulate_to_file(EnsembleConfig.from_dict({
        "system": "oscillator", "n_traj": 12, "dt": 0.05, "t_end": 6.0, "seed": 4,
        "params": {"damping": 0.2, "drive_amplitude": 0.5, "drive_frequency": 1.3}}),
        tmp_path_factory.mktemp("leaks") / "clean.h5")


def _poison(clean, rows, path):
    """A copy of the file whose trajectories ``rows`` are nothing like the oscillator's (finite, so that a
    leak shows as different weights rather than as NaN)."""
    path.write_bytes(clean.read_bytes())
    with h5py.File(path, "r+") as f:
        states = f["states"][()]
        states[rows] = 1e3 * states[rows][:, :, ::-1] + 7.0
        f["states"][...] = states
    return path


def _assert_same_weights(a, b):
    """Two fitted network models hold the same weights, bit for bit."""
    wa, wb = a.network_.get_weights(), b.network_.get_weights()
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


# The linear map and the ESN never read a validation set: their validation and test rows are poisoned. The
# GRU's early stopping reads its validation set (that is what it is for): only its test rows are.
@pytest.mark.parametrize("kind", ["linear", "esn", "gru"])
def test_training_never_sees_the_held_out_trajectories_cli(kind, clean_file, tmp_path):
    held_out = np.concatenate([TEST] if kind == "gru" else [VALIDATION, TEST])
    poisoned = _poison(clean_file, held_out, tmp_path / "poisoned.h5")
    settings = [a for k, v in SMALL[kind].items() for a in ("--set", f"{k}={v}")]
    split = ["--split", ",".join(map(str, FRACTIONS)), "--split-seed", str(SPLIT_SEED)]
    outs = []
    for name, path in (("clean", clean_file), ("poisoned", poisoned)):
        out = tmp_path / f"{name}.keras"
        assert main(["train", "--data", str(path), "--model", kind, *settings, *split, "-q", "--output", str(out)]) == 0
        outs.append(out)
    # The split the model records is the one poisoned around, and it never trains on a held-out row.
    recorded = load_model(outs[0]).provenance_["split"]
    assert recorded == {"train": TRAIN.tolist(), "validation": VALIDATION.tolist(), "test": TEST.tolist()}
    _assert_same_weights(load_model(outs[0]), load_model(outs[1]))


@pytest.mark.parametrize("kind", ["linear", "esn"])
def test_training_never_sees_the_held_out_trajectories_api(kind, clean_file, tmp_path):
    poisoned = _poison(clean_file, np.concatenate([VALIDATION, TEST]), tmp_path / "poisoned.h5")
    clean, bad = (build_step_data(read_trajectories(p), FeatureSpec(system="oscillator"))
                  for p in (clean_file, poisoned))
    a = build_model(kind, **SMALL[kind]).fit(clean.take(TRAIN), clean.take(VALIDATION))
    b = build_model(kind, **SMALL[kind]).fit(bad.take(TRAIN), bad.take(VALIDATION))
    _assert_same_weights(a, b)


@pytest.mark.parametrize("kind", ["linear", "esn", "rk4"])
def test_physrnn_rollout_never_reads_the_truth_after_its_context(kind, clean_file, tmp_path):
    # The CLI rolls the model out from the truth file it is given: a copy whose states after the context are
    # another system's must give the same rollout file.
    model = tmp_path / "m.keras"
    settings = [a for k, v in SMALL[kind].items() for a in ("--set", f"{k}={v}")]
    assert main(["train", "--data", str(clean_file), "--model", kind, *settings, "-q", "--output", str(model)]) == 0
    context = 15
    poisoned = tmp_path / "poisoned.h5"
    poisoned.write_bytes(clean_file.read_bytes())
    with h5py.File(poisoned, "r+") as f:
        states = f["states"][()]
        states[:, context:] = 1e3 * states[:, context:][:, :, ::-1] + 7.0
        f["states"][...] = states
    rolled = []
    for name, data in (("clean", clean_file), ("poisoned", poisoned)):
        out = tmp_path / f"{name}-rollout.h5"
        assert main(["rollout", "--model", str(model), "--data", str(data), "--select", "all",
                     "--context", str(context), "-q", "--output", str(out)]) == 0
        rolled.append(read_trajectories(out).states)
    np.testing.assert_array_equal(rolled[0][:, context:], rolled[1][:, context:])
    assert np.isfinite(rolled[0]).all()
