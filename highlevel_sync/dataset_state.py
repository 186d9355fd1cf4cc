"""Every pipeline's committed state in one dataset, read from the destination (`_dlt_pipeline_state`).

Shards (Airflow's `highlevel_shard_<n>`), the CLI's `highlevel`, a user's plain dlt pipeline: each
keeps its cursors in its own dlt state, and dlt writes that state into the dataset with every load
that changes it. Reading it there shows the whole dataset, whichever machine or pipelines folder
synced a location; a local pipeline folder shows one pipeline only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dlt.common.versioned_state import decompress_state

from .shards import SHARD_PIPELINE_PREFIX

logger = logging.getLogger("highlevel.status")

SOURCE = "highlevel"


@dataclass
class LocationState:
    """What the dataset knows of one location: per resource the newest entries of any pipeline."""

    location_id: str
    pipeline: str | None = None  # the pipeline that last synced it successfully
    last_success: str | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource -> section -> value

    @property
    def shard(self) -> int | None:
        return shard_index(self.pipeline)

    @property
    def last_sweep(self) -> str | None:
        sweeps = [entry["last_sweep"] for entry in self.resources.values() if entry.get("last_sweep")]
        return max(sweeps) if sweeps else None


def shard_index(pipeline_name: str | None) -> int | None:
    """`highlevel_shard_3` -> 3; None for any other pipeline."""
    prefix = f"{SHARD_PIPELINE_PREFIX}_"
    if pipeline_name and pipeline_name.startswith(prefix) and pipeline_name[len(prefix):].isdigit():
        return int(pipeline_name[len(prefix):])
    return None


def stored_states(pipeline: Any) -> dict[str, dict[str, Any]]:
    """Each pipeline's newest state among the dataset's completed loads: pipeline name -> state.

    Empty when the dataset (or its state table) does not exist yet."""
    states: dict[str, dict[str, Any]] = {}
    try:
        with pipeline.sql_client() as client:
            state_table = client.make_qualified_table_name("_dlt_pipeline_state")
            loads_table = client.make_qualified_table_name("_dlt_loads")
            rows = client.execute_sql(
                f"select s.pipeline_name, s.state from {state_table} as s join {loads_table} as l "
                "on l.load_id = s._dlt_load_id where l.status = 0 order by s._dlt_load_id, s.version")
    except Exception as exc:  # no dataset yet, or no destination to reach: nothing stored
        logger.debug("no stored pipeline state: %s", exc)
        return states
    for name, state in rows or ():
        try:
            states[str(name)] = decompress_state(state)  # later rows are newer: they win
        except Exception:  # another tool's malformed row: skip it, show the rest
            logger.warning("pipeline %s: its stored state cannot be read; left out", name)
    return states


def locations(states: dict[str, dict[str, Any]]) -> dict[str, LocationState]:
    """Every location in any pipeline's highlevel state, once: per resource and section the entry of
    the pipeline that succeeded last for it, and the location's owner the one that succeeded last."""
    found: dict[str, LocationState] = {}
    newest: dict[tuple[str, str], str] = {}  # (location, resource) -> last_success of the entry kept
    for pipeline_name, state in sorted(states.items()):
        resources = state.get("sources", {}).get(SOURCE, {}).get("resources", {})
        for resource, sections in resources.items():
            if not isinstance(sections, dict):
                continue
            for location_id, entry in _per_location(sections).items():
                loc = found.setdefault(location_id, LocationState(location_id))
                success = str(entry.get("last_success") or "")
                if (location_id, resource) in newest and success <= newest[(location_id, resource)]:
                    continue
                newest[(location_id, resource)] = success
                loc.resources[resource] = entry
                if success and (loc.last_success is None or success > loc.last_success):
                    loc.last_success, loc.pipeline = success, pipeline_name
                elif loc.pipeline is None:
                    loc.pipeline = pipeline_name
    return dict(sorted(found.items()))


def _per_location(sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A resource's state (section -> {location or location/stream: value}) as location -> section -> value."""
    parts: dict[str, dict[str, Any]] = {}
    for section, entries in sections.items():
        if isinstance(entries, dict):
            for key, value in entries.items():
                location_id = str(key).split("/", 1)[0]
                if location_id == str(key):  # a second stream's entry (`<location>/<stream>`) stays out of the row
                    parts.setdefault(location_id, {})[section] = value
                else:
                    parts.setdefault(location_id, {})
    return parts
