"""Sharded ensembles: blocks solved alone, joined by HDF5 virtual datasets, equal to one unsharded run."""

import os

import h5py
import numpy as np
import pytest

from simulators.ensemble import (EnsembleConfig, join_shards, shard_blocks, shard_path, simulate_shard,
                                 simulate_to_file)
from simulators.trajectory_file import TrajectoryFileError, read_trajectories

from .oracles import dataset_bytes

REFERENCE = {"system": "oscillator", "n_traj": 9, "dt": 0.1, "t_end": 3.0, "seed": 5, "method": "reference",
             "params": {"damping": {"uniform": [0.1, 0.5]}, "x0": {"uniform": [-1, 1]}}}


def _sharded(config, path, n_shards, batch_size=None):
    blocks = shard_blocks(config, n_shards, batch_size=batch_size)
    shards = [simulate_shard(config, shard_path(path, i, len(blocks)), b, batch_size=batch_size)
              for i, b in enumerate(blocks)]
    return join_shards(config, path, shards, blocks)


def test_blocks_cover_the_ensemble_in_order():
    config = EnsembleConfig.from_dict({**REFERENCE, "method": "exact", "n_traj": 10})
    blocks = shard_blocks(config, 3)
    assert [(b.start, b.stop) for b in blocks] == [(0, 3), (3, 7), (7, 10)]


def test_reference_blocks_start_on_the_batch_grid():
    # The reference integrator solves a batch as one system, so a block must be whole batches to match.
    blocks = shard_blocks(EnsembleConfig.from_dict(REFERENCE), 2, batch_size=4)
    assert [(b.start, b.stop) for b in blocks] == [(0, 8), (8, 9)]  # 3 batches: [0, 4), [4, 8), [8, 9)
    with pytest.raises(ValueError, match="4 shards asked of an ensemble of 3 batches of 4 trajectories.*at most 3"):
        shard_blocks(EnsembleConfig.from_dict(REFERENCE), 4, batch_size=4)
    with pytest.raises(ValueError, match="shards must be a positive integer, got 0"):
        shard_blocks(EnsembleConfig.from_dict(REFERENCE), 0)


@pytest.mark.parametrize("which", ["driven", "eigen_rk4", "reference"])
def test_sharded_equals_unsharded_byte_for_byte(tmp_path, which, driven_config, eigen_config):
    config = {"driven": driven_config,
              "eigen_rk4": EnsembleConfig.from_dict({**eigen_config.to_dict(), "method": "rk4"}),
              "reference": EnsembleConfig.from_dict(REFERENCE)}[which]
    whole = simulate_to_file(config, tmp_path / "whole.h5", batch_size=4)
    joined = _sharded(config, tmp_path / "sharded.h5", 3, batch_size=4)
    a, b = dataset_bytes(whole), dataset_bytes(joined)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)  # states, drive, params, time, scales: every byte
    with h5py.File(joined, "r") as f:
        assert f["states"].is_virtual and f.attrs["shards"] == 3
    tr = read_trajectories(joined)  # the same reader as for a plain file
    assert tr.n_traj == config.n_traj and np.isfinite(tr.states).all()


def test_a_missing_shard_is_an_error_not_nan(tmp_path, driven_config):
    joined = _sharded(driven_config, tmp_path / "e.h5", 2)
    shard_path(joined, 1, 2).unlink()
    with pytest.raises(TrajectoryFileError, match=r"1 of them are missing \(first: .*001-of-002.h5'\)"):
        read_trajectories(joined)


def test_the_folder_moves_as_a_whole(tmp_path, driven_config):
    _sharded(driven_config, tmp_path / "a" / "e.h5", 2)
    os.rename(tmp_path / "a", tmp_path / "b")  # shard paths are relative to the joined file
    np.testing.assert_array_equal(read_trajectories(tmp_path / "b" / "e.h5").states,
                                  read_trajectories(simulate_to_file(driven_config, tmp_path / "w.h5")).states)


def test_a_finished_shard_is_kept_and_a_stale_one_rewritten(tmp_path, driven_config):
    block = shard_blocks(driven_config, 2)[0]
    path = simulate_shard(driven_config, tmp_path / "s.h5", block)
    before = path.stat().st_mtime_ns
    assert simulate_shard(driven_config, path, block).stat().st_mtime_ns == before
    other = EnsembleConfig.from_dict({**driven_config.to_dict(), "seed": 8})
    simulate_shard(other, path, block)
    assert path.stat().st_mtime_ns != before
    assert read_trajectories(path).attrs["config"]["seed"] == 8
