"""Test-only crash points: SIGKILL this process at a named point, so crash safety is tested deterministically.

A kill at a random moment (tests/e2e/test_oauth.py) finds some bugs by luck; a kill at each point
where a run's durable pieces (load packages, the pipeline's schema and state files, the DuckDB
file, the token store, the webhook inbox) can disagree finds them every time. The process names
a point with `HIGHLEVEL_KILL_POINT=<point>` and optionally `HIGHLEVEL_KILL_POINT_HIT=<n>` (die at the
n-th time the point is reached, default 1). SIGKILL, not an exception: no `finally`, no atexit, no
flush runs, exactly like the OOM killer or a lost machine.

With the variable unset, `kill_point` is one dict lookup and `arm_dlt` patches nothing.

Points in this project's code (`kill_point("<name>")` where they happen):
- `after_extract`: a batch's extract returned (package, schema and state files saved), not normalized;
- `after_load`: a batch is loaded, its locations' webhook deletions not yet marked applied;
- `between_chunks`: a batch holding a contacts chunk is loaded and committed, the next not extracted;
- `token_refresh`: a refreshed token pair is saved, the store lock still held, the token not yet used;
- `inbox_write`: the webhook inbox inserted a delivery (`Inbox.accept`) but did not COMMIT it.

Points inside dlt 1.31 (`arm_dlt` wraps the dlt method that marks them):
- `mid_extract`: the extract wrote its files but did not commit its package (`Extract.commit_packages`);
- `extract_committed`: the package is committed, but dlt has not yet saved the pipeline's schema and
  state files (they are saved by `Pipeline.extract`'s decorators after the call returns); only
  extracts that changed the schema count as hits, the others have no schema to lose there;
- `mid_normalize`: normalize saved the schema and wrote its files, the normalized package is not
  committed and the extracted one not deleted (`LoadStorage.commit_new_load_package`);
- `mid_load`: the first job of a package is loaded (`PackageStorage.complete_job`), the rest not;
- `load_unrecorded`: every job (merges included) ran, the load is not recorded in `_dlt_loads`
  (`Load.complete_package`).
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
from collections import Counter
from typing import Any

ENV_POINT = "HIGHLEVEL_KILL_POINT"
ENV_HIT = "HIGHLEVEL_KILL_POINT_HIT"

# point -> (module, class, method, kill before the call (True) or after it (False))
DLT_POINTS: dict[str, tuple[str, str, str, bool]] = {
    "mid_extract": ("dlt.extract.extract", "Extract", "commit_packages", True),
    "extract_committed": ("dlt.extract.extract", "Extract", "commit_packages", False),
    "mid_normalize": ("dlt.common.storages.load_storage", "LoadStorage", "commit_new_load_package", True),
    "mid_load": ("dlt.common.storages.load_package", "PackageStorage", "complete_job", False),
    "load_unrecorded": ("dlt.load.load", "Load", "complete_package", True),
}
OWN_POINTS = frozenset({"after_extract", "after_load", "between_chunks", "token_refresh", "inbox_write"})
POINTS = frozenset(DLT_POINTS) | OWN_POINTS

_hits: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """SIGKILL the process if `name` is the armed point and this is the armed hit; else nothing."""
    if os.environ.get(ENV_POINT) != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(os.environ.get(ENV_HIT) or "1"):
        os.kill(os.getpid(), signal.SIGKILL)


def arm_dlt() -> None:
    """If the armed point lives inside dlt, wrap the dlt method that marks it (once per process).

    dlt offers no hook between writing a package and saving its schema, so the wrapper is the only
    way to stop there deterministically. It is installed only when the variable names such a point.
    """
    point = os.environ.get(ENV_POINT)
    if point not in DLT_POINTS:
        return
    module_name, class_name, method_name, before = DLT_POINTS[point]
    owner = getattr(importlib.import_module(module_name), class_name)
    original = getattr(owner, method_name)
    if getattr(original, "_highlevel_kill_point", False):
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            kill_point(point)
        changed = point != "extract_committed" or _schema_changed(args[0])  # read before the commit
        result = original(*args, **kwargs)
        if not before and changed:
            kill_point(point)
        return result

    wrapper._highlevel_kill_point = True  # type: ignore[attr-defined]
    setattr(owner, method_name, wrapper)


def _schema_changed(extract: Any) -> bool:
    """The extract changed a live schema that dlt has not saved yet (what a kill after its commit loses)."""
    return any(schema.is_modified for schema in extract.schema_storage.live_schemas.values())
