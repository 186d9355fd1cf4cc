"""A sync puts Arrow on the system allocator: mimalloc (pyarrow's default) kept an agency's first
run 200 MB above it (see `_arrow_on_system_allocator`)."""

from collections.abc import Iterator

import pyarrow as pa
import pytest

from highlevel_sync.sync import _arrow_on_system_allocator


@pytest.fixture(autouse=True)
def _restore_pool() -> Iterator[None]:
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


def test_a_sync_moves_arrow_to_the_system_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    _arrow_on_system_allocator()
    assert pa.default_memory_pool().backend_name == "system"


def test_a_users_own_choice_of_allocator_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    _arrow_on_system_allocator()
    assert pa.default_memory_pool().backend_name == "mimalloc"
