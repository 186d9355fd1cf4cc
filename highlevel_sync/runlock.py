"""One run of a pipeline at a time, across processes.

Two runs of one dlt pipeline share its working directory, state and load packages: started
together (a cron overlap, a webhook-triggered run during a scheduled one) they fail each other at
load. So a run holds `<pipelines_dir>/<pipeline_name>.run.lock`, an OS file lock (flock via
`filelock`), for its whole length. The OS drops the lock when its holder dies, even by SIGKILL, so
a crash never leaves a stale lock behind. A second run waits for the first (up to
`run_lock_timeout_s`), or with `wait=False` gives up at once. Different pipeline names (Airflow
shards) never wait for each other.

    HighLevelError
    ├── RunInProgress      wait=False and another run holds the lock (CLI: exit code 75)
    └── RunLockTimeout     waited `timeout_s` and the other run still holds it
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlt.common.pipeline import get_dlt_pipelines_dir
from filelock import FileLock, Timeout

from sources.highlevel.errors import HighLevelError

logger = logging.getLogger("highlevel.runlock")


class RunInProgress(HighLevelError):
    """Another run of the pipeline is in progress and the caller chose not to wait."""


class RunLockTimeout(HighLevelError):
    """Another run of the pipeline held the lock for longer than the caller would wait."""


def lock_path(pipeline_name: str, pipelines_dir: str | None) -> Path:
    """Next to the pipeline's working directory, in the directory dlt keeps pipelines in."""
    return Path(pipelines_dir or get_dlt_pipelines_dir()) / f"{pipeline_name}.run.lock"


@contextmanager
def run_lock(pipeline_name: str, pipelines_dir: str | None, timeout_s: float, wait: bool) -> Iterator[Path]:
    """Hold the pipeline's run lock for the `with` block; yields the lock file's path.

    Raises RunInProgress (wait=False) or RunLockTimeout (after `timeout_s`) when another run, in
    this process or another, holds it. Not reentrant: a nested `run_lock` of the same pipeline in
    one thread waits for itself, so take it once, at the top of a run.
    """
    path = lock_path(pipeline_name, pipelines_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if not wait:
            raise RunInProgress(
                f"another run of pipeline {pipeline_name!r} is in progress; not waiting for it (--no-wait)"
            ) from None
        logger.warning("another run of pipeline %r is in progress; waiting for it to finish (up to %g s)",
                       pipeline_name, timeout_s)
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout:
            raise RunLockTimeout(
                f"another run of pipeline {pipeline_name!r} has been in progress for more than {timeout_s:g} s "
                f"(lock {path}); retry when it ends, or raise sources.highlevel.run_lock_timeout_s"
            ) from None
    logger.debug("holding the run lock of pipeline %r (%s)", pipeline_name, path)
    try:
        yield path
    finally:
        lock.release()
