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
loads queue, and a queued load logs that it waits. The server drops the lock when the holder's
connection ends, so a killed worker never leaves it behind.

Other destinations have no such lock; shard pipelines stage in a staging dataset of their own
there (`shards.py`), and a first-run table race fails one shard loudly for its retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

logger = logging.getLogger("highlevel.datasetlock")

# the advisory lock's name space, so this lock never meets another application's on the same key
LOCK_PREFIX = "highlevel-load:"


def lock_name(dataset_name: str) -> str:
    return LOCK_PREFIX + dataset_name


def takes_lock(pipeline: Any) -> bool:
    destination = pipeline.destination
    return destination is not None and destination.destination_type.endswith(".postgres")


@contextmanager
def dataset_lock(pipeline: Any) -> Iterator[None]:
    """Hold the pipeline's dataset for a load; waits while another pipeline loads into it."""
    if not takes_lock(pipeline):
        yield
        return
    key = lock_name(pipeline.dataset_name)
    with pipeline.sql_client() as client:  # autocommit: the lock outlives no transaction but the session
        if not client.execute_sql("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key)[0][0]:
            logger.info("waiting for another pipeline's load into dataset %s to finish", pipeline.dataset_name)
            waited = time.monotonic()
            client.execute_sql("SELECT pg_advisory_lock(hashtextextended(%s, 0))", key)
            logger.info("dataset %s is ours after %.1f s", pipeline.dataset_name, time.monotonic() - waited)
        try:
            yield
        finally:
            # a broken connection needs no unlock: the server drops the lock with the session
            with suppress(Exception):
                client.execute_sql("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)
