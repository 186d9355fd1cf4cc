"""One load at a time into a dataset, across pipelines, processes and machines (PostgreSQL).

dlt assumes a dataset has one pipeline loading it at a time. Airflow shards break that: each is a
pipeline of its own, all loading one dataset. Loads of two pipelines that overlap
(`tests/warehouse/test_shared_dataset.py` shows each of these):
- share `<dataset>_staging`, truncated when a load starts: one merges the other's rows too
  (a unique violation on `_dlt_id`) or finds its own wiped (rows silently lost);
- migrate the same tables without `IF NOT EXISTS` (`relation "users" already exists`);
- deadlock on the staging truncates.
So on PostgreSQL a load holds a session-level advisory lock named after the dataset, on a
connection of its own, for the whole of dlt's load step. Reads and normalization stay parallel;
loads queue, and a queued load logs what it waits for; after `run_lock_timeout_s` it gives up with
one line naming the lock and the session holding it. The server drops the lock when the holder's
connection ends, so a killed worker never leaves it behind.

Other destinations have no such lock; shard pipelines stage in a staging dataset of their own
there (`shards.py`), and a first-run table race fails one shard loudly for its retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import dlt

from sources.highlevel.config import DEFAULT_RUN_LOCK_TIMEOUT_S
from sources.highlevel.errors import HighLevelError

logger = logging.getLogger("highlevel.datasetlock")

# the advisory lock's name space, so this lock never meets another application's on the same key
LOCK_PREFIX = "highlevel-load:"
POLL_S = 0.5  # a queued load asks again this often (PostgreSQL has no timed wait for an advisory lock)


def lock_name(dataset_name: str) -> str:
    return LOCK_PREFIX + dataset_name


def takes_lock(pipeline: Any) -> bool:
    destination = pipeline.destination
    return destination is not None and destination.destination_type.endswith(".postgres")


class DatasetLockTimeout(HighLevelError):
    """Another pipeline's load held the dataset longer than `run_lock_timeout_s`."""


# the running sync's `run_lock_timeout_s` (its config may not come from dlt's providers)
_TIMEOUT: ContextVar[float | None] = ContextVar("highlevel_dataset_lock_timeout", default=None)


@contextmanager
def dataset_lock_timeout(seconds: float) -> Iterator[None]:
    """Within the block, dataset locks wait at most `seconds` (run_sync sets its config's value)."""
    token = _TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _TIMEOUT.reset(token)


def configured_timeout() -> float:
    """The running sync's `run_lock_timeout_s`, else `sources.highlevel.run_lock_timeout_s` (validated
    by `load_config` before any load; a value it would refuse cannot reach here)."""
    if _TIMEOUT.get() is not None:
        return float(_TIMEOUT.get() or 0.0)
    with suppress(Exception):
        value: Any = dlt.config.get("sources.highlevel.run_lock_timeout_s")
        if value not in (None, ""):
            return float(value)
    return DEFAULT_RUN_LOCK_TIMEOUT_S


@contextmanager
def dataset_lock(pipeline: Any, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the pipeline's dataset for a load; waits while another pipeline loads into it, at most
    `timeout_s` (default `run_lock_timeout_s`), then DatasetLockTimeout naming the holder."""
    if not takes_lock(pipeline):
        yield
        return
    key = lock_name(pipeline.dataset_name)
    limit = configured_timeout() if timeout_s is None else timeout_s
    with pipeline.sql_client() as client:  # autocommit: the lock outlives no transaction but the session
        if not _try_lock(client, key):
            logger.info("waiting for another pipeline's load into dataset %s to finish (%s)", pipeline.dataset_name,
                        _holder(client, key))
            waited = time.monotonic()
            while not _try_lock(client, key):
                left = limit - (time.monotonic() - waited)
                if left <= 0:
                    raise DatasetLockTimeout(
                        f"gave up after {limit:g} s (run_lock_timeout_s) waiting for dataset "
                        f"{pipeline.dataset_name}: another pipeline's load holds it ({_holder(client, key)}); "
                        "it may still be loading: rerun later, raise run_lock_timeout_s, or end that session")
                time.sleep(min(POLL_S, left))
            logger.info("dataset %s is ours after %.1f s", pipeline.dataset_name, time.monotonic() - waited)
        try:
            yield
        finally:
            # a broken connection needs no unlock: the server drops the lock with the session
            with suppress(Exception):
                client.execute_sql("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)


def _try_lock(client: Any, key: str) -> bool:
    return bool(client.execute_sql("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key)[0][0])


def _holder(client: Any, key: str) -> str:
    """Who holds the lock, as PostgreSQL sees it: the advisory lock's name and the holding session."""
    described = f"PostgreSQL advisory lock {key!r}"
    with suppress(Exception):  # pg_stat_activity may hide other users' sessions: the name still helps
        number = int(client.execute_sql("SELECT hashtextextended(%s, 0)", key)[0][0]) & 0xFFFFFFFFFFFFFFFF
        rows = client.execute_sql(
            "SELECT l.pid, a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1",
            number >> 32, number & 0xFFFFFFFF)
        if rows:
            pid, application, address, since = rows[0]
            who = f"held by session pid {pid}"
            if application:
                who += f" ({application})"
            if address:
                who += f" from {address}"
            if since is not None:
                who += f" connected since {since:%Y-%m-%d %H:%M:%S %Z}".rstrip()
            return f"{described}, {who}"
    return described
