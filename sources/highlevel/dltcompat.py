"""The one change dlt 1.31 needs to take nested tables as Arrow items at extract.

dlt's extract counts rows per resource by looking up each written table's `resource` in the schema.
Its own nested tables never reach the extract (its normalizer makes them later), so they carry no
`resource`, and may not: merging a nested table that names one raises
`TablePropertiesConflictException`. A nested table written at extract (see `columnar.py`) thus
fails the count with `KeyError: 'resource'`, after its rows were written.

`allow_nested_arrow_tables` wraps `Extract._compute_metrics` so that, while it runs, a nested table
without a `resource` lends its root table's. Nothing of it outlives the call: the saved schema is
dlt's own, and everything else in the extract, normalize and load of those tables is unpatched.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from dlt.common.schema.utils import get_root_table
from dlt.extract.extract import Extract

__all__ = ["allow_nested_arrow_tables"]

_lock = threading.Lock()
_MARK = "_highlevel_nested_arrow"


def allow_nested_arrow_tables() -> bool:
    """Install the wrapper once per process; False if this dlt has no such method to wrap (another
    version: nested tables then take dlt's JSON path, see `columnar.py`)."""
    with _lock:
        original = getattr(Extract, "_compute_metrics", None)
        if original is None:
            return False
        if getattr(original, _MARK, False):
            return True

        @functools.wraps(original)
        def compute_metrics(self: Extract, load_id: str, source: Any) -> Any:
            tables = source.schema.tables
            lent = []
            for table in tables.values():
                if table.get("parent") and "resource" not in table:
                    resource = get_root_table(tables, table["name"]).get("resource")
                    if resource:
                        table["resource"] = resource
                        lent.append(table)
            try:
                return original(self, load_id, source)
            finally:
                for table in lent:
                    table.pop("resource", None)

        setattr(compute_metrics, _MARK, True)
        Extract._compute_metrics = compute_metrics  # type: ignore[method-assign]
        return True
