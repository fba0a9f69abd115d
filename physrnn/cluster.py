"""Work spread over a Dask cluster (``dask.distributed``): sharded ensembles here, sweeps in :mod:`physrnn.sweep`.

The default cluster is a :class:`~dask.distributed.LocalCluster` on this machine, one single-threaded worker
process per core; ``scheduler="tcp://HOST:8786"`` joins a running cluster instead (for a batch system, start
one with ``dask-jobqueue``, see the README). Tasks receive absolute paths and write their outputs there, so
the workers must see the same file system as the client, as they do on a laptop or an HPC cluster.

Nothing here imports TensorFlow: workers stay light, and each sweep trial runs in a process of its own.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from simulators.ensemble import EnsembleConfig, join_shards, shard_blocks, shard_path, simulate_shard
from simulators.trajectory_file import check_output_path

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["connect", "default_workers", "simulate_sharded"]


def default_workers() -> int:
    """The cores this process may run on (what a LocalCluster gets unless told otherwise)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, *, timeout: float = 20,
            log: Callable[[str], None] = lambda message: None) -> Iterator[Client]:
    """A Dask client: to the scheduler at ``scheduler`` (waiting at most ``timeout`` seconds for it), or to a
    new LocalCluster of ``workers`` processes (default: one per core); closed on exit."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None and workers is not None:
        raise ValueError("give a scheduler address or a number of local workers, not both")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as err:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start one with "
                          "`dask scheduler` (or dask-jobqueue) and give its tcp://HOST:PORT address") from None
        with client:
            log(f"dask: connected to {scheduler}, {len(client.scheduler_info()['workers'])} workers")
            yield client
        return
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    # One single-threaded process per worker: tasks release nothing to share, and processes isolate them.
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        log(f"dask: local cluster of {workers} worker processes")
        yield client


def simulate_sharded(config: EnsembleConfig, path: str | os.PathLike, n_shards: int, client, *,
                     progress: Callable[[int], None] | None = None, batch_size: int | None = None) -> Path:
    """Write the ensemble as ``n_shards`` trajectory files solved in parallel on ``client``'s workers, then
    ``path``: one file presenting them as a single ensemble (virtual datasets), the same data as an
    unsharded run with the same config.

    The shards go to ``NAME.shards/`` beside ``path``. A shard already written for the same config and block
    is kept, so an interrupted run resumes. ``progress`` is called with the trajectories of each shard done.
    """
    from dask.distributed import as_completed

    path = check_output_path(path).resolve()
    blocks = shard_blocks(config, n_shards, batch_size=batch_size)
    shards = [shard_path(path, i, len(blocks)) for i in range(len(blocks))]
    shards[0].parent.mkdir(parents=True, exist_ok=True)
    futures = {client.submit(simulate_shard, config, s, b, batch_size=batch_size, pure=False): b
               for s, b in zip(shards, blocks)}
    try:
        for future in as_completed(futures):
            future.result()  # a shard's error is raised here, with its own message
            if progress:
                progress(futures[future].stop - futures[future].start)
    finally:
        client.cancel(list(futures))
    return join_shards(config, path, shards, blocks)
