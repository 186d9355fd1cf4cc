"""pytest fixtures (installed as a pytest11 plugin): a running sandbox per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .config import SandboxConfig
from .server import Sandbox


@pytest.fixture
def highlevel_sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Call with SandboxConfig fields as keywords; every sandbox started is stopped after the test."""
    started: list[Sandbox] = []

    def make(config: SandboxConfig | None = None, **overrides: Any) -> Sandbox:
        sandbox = Sandbox(config, **overrides).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def highlevel_sandbox(highlevel_sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    """A small, fast sandbox: three locations of 200, 50 and 10 contacts, 1 s index lag."""
    return highlevel_sandbox_factory(contacts_per_location=(200, 50, 10), index_lag_s=1.0)
