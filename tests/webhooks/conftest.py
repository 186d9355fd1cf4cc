"""Shared fixtures for the webhook receiver tests: test keys, signed deliveries, receivers in-process,
in a uvicorn thread on loopback, or in a child process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.exceptions import StarletteDeprecationWarning
from starlette.types import ASGIApp

from sources.highlevel.webhooks import Receiver, WebhookConfig
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.signing import SigningKeys, SignScheme, generate_test_keys

with warnings.catch_warnings():  # starlette 1.x nags about httpx vs httpx2 at import time
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
# HighLevel's documented webhook payloads (copied from the team's API notes, so CI needs nothing else)
EXAMPLES = Path(__file__).resolve().parent / "examples"
WEBHOOK_PATH = "/webhooks/highlevel"

__all__ = ["EXAMPLES", "ROOT", "TestClient", "example"]


def example(name: str, **extra: Any) -> dict[str, Any]:
    """One of HighLevel's documented webhook payloads, with fields replaced or added."""
    payload: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return {**payload, **extra}


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


@pytest.fixture(scope="session")
def keys() -> SigningKeys:
    return generate_test_keys()


@pytest.fixture(scope="session")
def other_keys() -> SigningKeys:
    """A second key set: valid signatures from the wrong signer."""
    return generate_test_keys()


@pytest.fixture
def make_config(keys: SigningKeys, tmp_path: Path) -> Callable[..., WebhookConfig]:
    def make(**overrides: Any) -> WebhookConfig:
        values: dict[str, Any] = {
            "ed25519_public_key": keys.ed25519_public_pem,
            "rsa_public_key": keys.rsa_public_pem,
            "inbox_path": str(tmp_path / "inbox.sqlite"),
            "quiet_s": 0.2,
            "max_delay_s": 1.0,
        }
        values.update(overrides)
        return WebhookConfig(**values)

    return make


@pytest.fixture
def make_receiver(make_config: Callable[..., WebhookConfig]) -> Iterator[Callable[..., Receiver]]:
    """Receivers with their background threads running; all stopped after the test."""
    made: list[Receiver] = []

    def make(trigger: Any = None, config: WebhookConfig | None = None, **kwargs: Any) -> Receiver:
        receiver = Receiver(config or make_config(), trigger, **kwargs).start()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop(timeout=10)


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def signed(keys: SigningKeys, payload: dict[str, Any] | bytes,
           scheme: SignScheme = "ed25519") -> tuple[bytes, dict[str, str]]:
    """(body, headers) for a delivery signed like HighLevel signs it."""
    body = payload if isinstance(payload, bytes) else body_of(payload)
    headers = {"content-type": "application/json", **keys.headers(body, scheme)}
    return body, headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="webhook-test-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "test server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve_in_thread() -> Iterator[Callable[[ASGIApp], ThreadServer]]:
    servers: list[ThreadServer] = []

    def start(app: ASGIApp) -> ThreadServer:
        server = ThreadServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class ChildReceiver:
    """`serve(...)` in a child process (tests/webhooks/receiver_proc.py) on a free loopback port."""

    def __init__(self, inbox: Path, ed25519_pem: Path, rsa_pem: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.webhooks.receiver_proc", "--port", str(self.port), "--inbox", str(inbox),
             "--ed25519-key", str(ed25519_pem), "--rsa-key", str(rsa_pem)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"receiver exited with {self.proc.returncode}"
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("receiver child process did not become healthy")

    def health(self) -> dict[str, Any]:
        response = httpx.get(self.url + "/healthz", timeout=5.0)
        assert response.status_code == 200
        result: dict[str, Any] = response.json()
        return result

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no shutdown code runs
        self.proc.wait(timeout=10)
        self.log.close()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()
