"""Sharded ensembles on a Dask LocalCluster: the same bytes as one unsharded run, from the API and the CLI."""

import pytest

from physrnn.cli import main
from physrnn.cluster import connect, simulate_sharded
from simulators.ensemble import simulate_to_file
from simulators.trajectory_file import read_trajectories
from tests.simulators.oracles import dataset_bytes


@pytest.mark.slow  # starts a Dask cluster: behind the marker, run by make test-slow
def test_sharded_on_two_workers_equals_unsharded(tmp_path, dask_client, driven_config):
    done = []
    joined = simulate_sharded(driven_config, tmp_path / "s.h5", 4, dask_client, progress=done.append)
    whole = simulate_to_file(driven_config, tmp_path / "w.h5")
    assert sorted(done) == [3, 3, 3, 3]  # every shard reported, 12 trajectories in all
    assert dataset_bytes(joined) == dataset_bytes(whole)
    assert len(list((tmp_path / "s.shards").glob("*.h5"))) == 4


@pytest.mark.slow  # starts a Dask cluster: behind the marker, run by make test-slow
def test_a_shard_that_fails_fails_the_run_and_leaves_no_joined_file(tmp_path, dask_client, driven_config):
    (tmp_path / "s.shards").mkdir()
    (tmp_path / "s.shards" / "001-of-002.h5").mkdir()  # a folder where a shard must go: that shard raises
    with pytest.raises(Exception, match="is a directory"):
        simulate_sharded(driven_config, tmp_path / "s.h5", 2, dask_client)
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.slow  # starts a Dask cluster: behind the marker, run by make test-slow
def test_cli_shards(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('system = "eigen"\nn_traj = 7\ndt = 0.1\nt_end = 2.0\nseed = 4\n')
    assert main(["simulate", "--config", str(config), "--shards", "3", "--workers", "2", "-q",
                 "--output", str(tmp_path / "s.h5")]) == 0
    assert main(["simulate", "--config", str(config), "-q", "--output", str(tmp_path / "w.h5")]) == 0
    assert dataset_bytes(tmp_path / "s.h5") == dataset_bytes(tmp_path / "w.h5")
    assert read_trajectories(tmp_path / "s.h5").n_traj == 7


@pytest.mark.parametrize("argv, message", [
    (["--shards", "9"], "9 shards asked of an ensemble of 7 trajectories; ask for at most 7"),
    (["--workers", "2"], "--scheduler and --workers spread the work of --shards N; give --shards too"),
    (["--shards", "2", "--workers", "0"], "--workers must be a positive integer, got 0"),
])
def test_cli_shard_errors(tmp_path, capsys, argv, message):
    config = tmp_path / "c.toml"
    config.write_text('system = "eigen"\nn_traj = 7\ndt = 0.1\nt_end = 2.0\nseed = 4\n')
    assert main(["simulate", "--config", str(config), "-q", "--output", str(tmp_path / "s.h5"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"physrnn simulate: error: {message}"
    assert not (tmp_path / "s.h5").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    with pytest.raises(OSError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'"):
        with connect("tcp://127.0.0.1:1", timeout=2):
            pass
