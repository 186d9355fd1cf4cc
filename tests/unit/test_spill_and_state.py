"""Pure pieces of the parallel run: spill buffers, per-location state parts, merged extract items."""

from __future__ import annotations

import gc

import dlt
import pyarrow as pa

from highlevel_sync.sync import _fewer_gc_passes
from sources.highlevel import _Merger, merge_location_state, split_by_location
from sources.highlevel.spill import MemoryBudget, SpillBuffer


def test_a_spill_buffer_keeps_order_across_memory_and_disk_and_replays() -> None:
    budget = MemoryBudget(limit=2_000)
    buffer = SpillBuffer(budget)
    pages = [[{"id": i, "pad": "x" * 300}] for i in range(20)]
    for page in pages:
        buffer.append(page)
    assert budget.used <= 2_000 and budget.spilled_bytes > 0  # most of it went to disk
    assert list(buffer) == pages
    assert list(buffer) == pages  # a failed extract is retried from the same buffer
    buffer.close()
    assert budget.used == 0 and list(buffer) == []


def test_a_full_budget_sends_every_later_item_to_disk_in_order() -> None:
    budget = MemoryBudget(limit=10_000)
    first, second = SpillBuffer(budget), SpillBuffer(budget)
    first.append("x" * 9_000)
    for i in range(3):
        second.append(i)  # the budget is taken: these spill
    first.close()  # memory comes back, but `second` keeps its order by staying on disk
    second.append(3)
    assert list(second) == [0, 1, 2, 3]


def test_state_parts_split_by_location_and_merge_back_without_touching_others() -> None:
    state = {
        "cursors": {"L1": "2024-01-01", "L1/email": "2024-01-02", "L2": "2024-02-01"},
        "resume": {"L1": {"after": [1]}},
        "last_success": {"L2": "2024-02-02"},
    }
    parts = split_by_location(state)
    assert parts["L1"] == {"cursors": {"L1": "2024-01-01", "L1/email": "2024-01-02"}, "resume": {"L1": {"after": [1]}}}
    assert parts["L2"] == {"cursors": {"L2": "2024-02-01"}, "last_success": {"L2": "2024-02-02"}}

    known = {section: set(entries) for section, entries in parts["L1"].items()}
    after = {"cursors": {"L1": "2024-03-01", "L1/email": "2024-03-02"}, "resume": {},
             "last_success": {"L1": "2024-03-03"}}  # the chunked read finished: its resume marker is gone
    merge_location_state(state, after, known)
    assert state == {
        "cursors": {"L1": "2024-03-01", "L1/email": "2024-03-02", "L2": "2024-02-01"},
        "resume": {},
        "last_success": {"L2": "2024-02-02", "L1": "2024-03-03"},
    }


def test_merged_items_keep_each_tables_order_and_hints() -> None:
    rows_hints = dlt.mark.make_hints(table_name="contacts", write_disposition="merge", primary_key="id")
    value_hints = dlt.mark.make_hints(table_name="values", write_disposition="merge")
    merger = _Merger()
    out = []
    for i in range(3):  # pages of two tables, interleaved, from separate reads (equal, not identical hints)
        out += merger.add(dlt.mark.with_hints([{"id": i}], dict(rows_hints), create_table_variant=True))
        out += merger.add(dlt.mark.with_hints(pa.table({"v": [i, i]}), dict(value_hints), create_table_variant=True))
    out += merger.flush()
    assert len(out) == 2
    rows = next(item for item in out if isinstance(item.data, list))
    values = next(item for item in out if isinstance(item.data, pa.Table))
    assert rows.data == [{"id": 0}, {"id": 1}, {"id": 2}] and rows.meta.hints["table_name"] == "contacts"
    assert values.data.column("v").to_pylist() == [0, 0, 1, 1, 2, 2] and values.meta.hints["table_name"] == "values"


def test_a_single_row_item_goes_through_after_what_waits() -> None:
    merger = _Merger()
    out = list(merger.add([{"id": 1}])) + list(merger.add({"id": 2})) + list(merger.flush())
    assert out == [[{"id": 1}], {"id": 2}]


def test_a_sync_raises_the_collector_threshold_and_the_last_one_puts_it_back() -> None:
    before = gc.get_threshold()
    with _fewer_gc_passes():
        assert gc.get_threshold()[0] == max(before[0], 20_000)
        with _fewer_gc_passes():  # an overlapping sync in another thread of the process
            pass
        assert gc.get_threshold()[0] == max(before[0], 20_000)  # the first one still runs
    assert gc.get_threshold() == before
