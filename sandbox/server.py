"""Run the sandbox: in a background thread on a free loopback port, or blocking for the CLI."""

from __future__ import annotations

import copy
import socket
import threading
import time
from dataclasses import replace
from typing import Any

import uvicorn

from . import crm, oauth, routes_more
from .app import build_app
from .config import SandboxConfig
from .faults import Faults
from .oauth import OAuthState
from .ratelimit import RateLimiter
from .webhooks import WebhookEmitter
from .world import World


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Sandbox:
    """A local HighLevel API with seeded data; use as a context manager or start()/stop()."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SandboxConfig(), **overrides)
        self.world = World(self.config)
        self.limiter = RateLimiter(self.config.rate_limit_max, self.config.rate_limit_interval_ms,
                                   self.config.daily_quota)
        self.faults = Faults(self.config.seed)
        self.oauth = OAuthState(self.world)
        self.app, self.gateway = build_app(self.world, self.limiter, self.faults, _extra_routes(self))
        self.gateway.suspended = self.oauth.suspended
        self.webhooks = WebhookEmitter(self.config.client_id.split("-")[0])
        self.host = "127.0.0.1"
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, port: int = 0) -> Sandbox:
        self.port = port or _free_port(self.host)
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="highlevel-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("sandbox did not start within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control API --------------------------------------------------------------------------

    @property
    def location_ids(self) -> list[str]:
        return list(self.world.locations)

    @property
    def company_id(self) -> str:
        return self.world.company_id

    def token_for(self, location_id: str) -> str:
        return self.world.pits[location_id]

    def truth_contacts(self, location_id: str) -> list[dict[str, Any]]:
        with self.world.lock:
            return copy.deepcopy(sorted(self.world.locations[location_id].contacts.truth.values(),
                                        key=lambda r: r["id"]))

    def truth_custom_fields(self, location_id: str, model: str = "contact") -> list[dict[str, Any]]:
        fields = self.world.locations[location_id].custom_fields
        return [copy.deepcopy(f) for f in fields if model == "all" or f["model"] == model]

    def truth_users(self, location_id: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.world.locations[location_id].users)

    def truth_location(self, location_id: str) -> dict[str, Any]:
        return copy.deepcopy(self.world.locations[location_id].record)

    def truth(self, location_id: str, family: str) -> list[dict[str, Any]]:
        """Ground truth of another family: opportunities, pipelines, conversations, messages,
        calendars or events (appointments), as the API would return them, ignoring index lag."""
        with self.world.lock:
            return copy.deepcopy(sorted(crm.iter_values(self.world.locations[location_id], family),
                                        key=lambda r: r["id"]))

    def move_opportunities(self, location_id: str, n: int) -> list[str]:
        return crm.move_opportunities(self.world, location_id, n)

    def add_messages(self, location_id: str, channels: list[str]) -> list[str]:
        return crm.add_messages(self.world, location_id, channels)

    def reschedule_appointments(self, location_id: str, n: int, cancel: int = 0) -> list[str]:
        return crm.reschedule_appointments(self.world, location_id, n, cancel)

    def add_calendar(self, location_id: str, appointments: int) -> tuple[str, list[str]]:
        return crm.add_calendar(self.world, location_id, appointments)

    # -- OAuth control ------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    def grant(self, user_type: str = "Company", location_id: str | None = None) -> str:
        """A fresh refresh token, as an app install would produce."""
        with self.world.lock:
            return self.oauth.grant(user_type, location_id)

    def auth_code(self, user_type: str = "Company", location_id: str | None = None) -> str:
        with self.world.lock:
            return self.oauth.code(user_type, location_id)

    def suspend(self, location_id: str) -> None:
        self.oauth.suspended.add(location_id)

    def uninstall(self, location_id: str) -> None:
        self.oauth.installed.discard(location_id)

    @property
    def burned_tokens(self) -> int:
        return self.oauth.burned

    def update_contacts(self, location_id: str, n: int, notify: str | None = None) -> list[str]:
        """Update n contacts; with `notify` (a receiver URL) also deliver ContactUpdate webhooks."""
        ids = self.world.update_contacts(location_id, n)
        self._notify(notify, "ContactUpdate", location_id, ids)
        return ids

    def create_contacts(self, location_id: str, n: int) -> list[str]:
        return self.world.create_contacts(location_id, n)

    def delete_contacts(self, location_id: str, n: int, notify: str | None = None) -> list[str]:
        """Delete n contacts; with `notify` also deliver ContactDelete webhooks (each sent twice:
        HighLevel's deliveries can repeat)."""
        before = {c["id"]: c for c in self.truth_contacts(location_id)}
        ids = self.world.delete_contacts(location_id, n)
        if notify:
            for contact_id in ids:
                self.webhooks.deliver(notify, self.webhooks.event("ContactDelete", location_id, before[contact_id]),
                                      times=2)
        return ids

    def _notify(self, url: str | None, event_type: str, location_id: str, ids: list[str]) -> None:
        if not url:
            return
        current = {c["id"]: c for c in self.truth_contacts(location_id)}
        for record_id in ids:
            self.webhooks.deliver(url, self.webhooks.event(event_type, location_id, current[record_id]))

    def wait_for_index(self) -> None:
        self.world.wait_for_index()

    def requests(self, path_prefix: str | None = None) -> list[dict[str, Any]]:
        return [dict(e) for e in list(self.gateway.log) if path_prefix is None or e["path"].startswith(path_prefix)]

    def clear_requests(self) -> None:
        self.gateway.log.clear()

    def set_rate_limits(self, max: int | None = 100, interval_ms: int = 10_000,
                        daily_quota: int | None = 200_000) -> None:
        self.limiter.configure(max, interval_ms, daily_quota)

    def reset_rate_limits(self) -> None:
        self.limiter.configure(self.config.rate_limit_max, self.config.rate_limit_interval_ms,
                               self.config.daily_quota)


def _extra_routes(sb: Sandbox) -> Any:
    """Route families beyond contacts: the CRM families and OAuth."""
    return lambda gw: routes_more.routes(sb.world, gw) + oauth.routes(sb.oauth, gw)


def serve(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted (for `highlevel-sync sandbox serve`)."""
    sb = Sandbox(config)
    uvicorn.run(sb.app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
