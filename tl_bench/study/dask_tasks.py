"""Workers as Dask tasks: the same worker loop, on any cluster Dask reaches.

``tl-bench run SPEC --dask local|ADDRESS --workers N`` submits N long-running
tasks; each runs this machine's worker loop (``run_spec`` with one worker)
against the spec's shared Optuna storage and MLflow tracking URI, so Dask only
places and restarts them: no scheduling of trials of its own. ``local`` starts
a ``LocalCluster`` on 127.0.0.1; an address joins a running scheduler
(``dask scheduler`` / ``dask worker``, dask-jobqueue, dask-kubernetes).
A task whose worker dies is run again elsewhere (bounded by ``RETRIES`` and
Dask's ``allowed-failures``); its trial is failed through the heartbeat. Each
task, and a task run again, draws from a sampler stream of its own
(``samplers.sampler_stream``: its process and the trials the study holds), so
retries do not replay the configurations of the attempt before.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from tl_bench.errors import StorageError
from tl_bench.redact import redact
from tl_bench.spec import StudySpec
from tl_bench.study.options import DatasetOutcome, RunOptions, SummaryCallback
from tl_bench.study.workers import device_of, threads_per_worker

# ``run_spec`` as the runner hands it over: the tasks run it without this module importing the runner.
RunSpec = Callable[..., list[DatasetOutcome]]

RETRIES = 2
GPU = "GPU"  # the Dask worker resource a task asks for: `dask worker --resources GPU=1`
CONNECT_TIMEOUT_S = 5.0  # a scheduler that does not take a connection in this long is told as dead
DEFAULT_PORT = 8786  # `dask scheduler`'s
SCHEDULER_WORDS = "'local', or the address of a running `dask scheduler` (tcp://HOST:8786)"


def check_scheduler(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """StorageError in one line naming ``address`` (its password hidden) unless a scheduler there takes a
    connection within ``timeout_s``; ``run_spec`` asks before it creates a study or a run. Transports
    other than TCP and TLS are left to the Dask client."""
    from distributed.comm.addressing import parse_address, parse_host_port

    shown = redact(address)
    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location, DEFAULT_PORT)
    except ValueError:
        raise StorageError(f"--dask {shown!r} is not a scheduler address", SCHEDULER_WORDS) from None
    if scheme not in ("tcp", "tls"):
        return
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        reason = err.strerror or f"no answer within {timeout_s:g} s"
        raise StorageError(f"no Dask scheduler answers at {shown!r} ({reason})", SCHEDULER_WORDS) from None


def worker_task(
    spec: StudySpec, worker_index: int, threads: int | None, device: str | None, run_spec: RunSpec,
    on_summary: SummaryCallback | None = None,
) -> dict[str, dict[str, int]]:
    """One Dask task: this worker's share of every dataset study; returns trial counts per dataset.

    ``threads`` None: as many torch threads as the Dask worker was given (``--nthreads``).
    """
    import torch
    from distributed import get_worker

    from tl_bench.tracking.lock_wait import wait_for_locks

    if device is not None:  # before anything touches CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    torch.set_num_threads(threads or get_worker().state.nthreads)
    wait_for_locks()  # as `tl-bench run` does: a worker waits for a busy store's locks, it does not fail
    outcomes = run_spec(spec, RunOptions(worker_index=worker_index, on_summary=on_summary), quiet=True)
    return {o.dataset: o.counts for o in outcomes}


def run_on_dask(
    spec: StudySpec, options: RunOptions, run_spec: RunSpec, *, tick: Callable[[], None] | None = None
) -> None:
    """Run ``options.workers`` worker tasks (each ``run_spec`` with one worker) on the cluster ``options.dask``
    names; wait for all of them."""
    from distributed import Client, LocalCluster, wait

    if options.dask is None:
        raise ValueError("options.dask names no cluster")
    resources = {GPU: options.gpus_per_worker} if options.gpus_per_worker else None
    cluster = None
    if options.dask == "local":
        # One task per Dask worker process; torch threads share the cores out among them.
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, resources=resources)
        threads, devices = threads_per_worker(options.workers), options.devices or []
        client = Client(cluster)
    else:
        try:
            client = Client(options.dask, timeout=30)
        except (OSError, TimeoutError) as err:
            raise StorageError(f"no Dask scheduler answers at {redact(options.dask)!r} ({type(err).__name__})",
                               SCHEDULER_WORDS) from None
        # Remote workers bring their own devices (CUDA_VISIBLE_DEVICES of their launcher) and cores.
        threads, devices = None, []
    try:
        futures = [
            client.submit(worker_task, spec, index, threads, device_of(index, devices), run_spec, options.on_summary,
                          key=f"tl-bench-{spec.name}-worker-{index}-{time.time_ns()}", resources=resources,
                          retries=RETRIES, pure=False)
            for index in range(1, options.workers + 1)
        ]
        while True:
            try:
                wait(futures, timeout=1.0)
                break
            except TimeoutError:
                if tick is not None:
                    tick()
        client.gather(futures)  # a task that failed every retry raises its error here
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["GPU", "RETRIES", "check_scheduler", "run_on_dask", "worker_task"]
