"""Run the sandbox: in a background thread on a free loopback port, or blocking for the CLI.

`Sandbox` is also the control API: ground truth, mutations, the request log, faults and limits,
for tests and the demo in the same process (`app.py` mirrors it over HTTP for other processes).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import asdict, replace
from typing import Any

import uvicorn

from . import account_lists, crm, fields, objects_changes
from .app import build_app
from .config import KEEP, Keep, SandboxConfig
from .faults import Faults
from .gateway import Gateway
from .latency import Latency
from .oauth import OAuthState
from .ratelimit import RateLimiter
from .revenue_control import RevenueControls
from .scopes import revoke
from .search_answers import OpportunitySearchAnswers
from .webhooks import WebhookEmitter
from .world import World

logger = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class Sandbox(RevenueControls):
    """A local HighLevel API with seeded data; use as a context manager or start()/stop()."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SandboxConfig(), **overrides)
        started = time.perf_counter()
        self.world = World(self.config)
        logger.debug("sandbox data generated in %.2f s", time.perf_counter() - started)
        self.limiter = RateLimiter(self.config.rate_limit_max, self.config.rate_limit_interval_ms,
                                   self.config.daily_quota)
        self.faults = Faults(self.config.seed)
        # how POST /opportunities/search answers (`.set("405")`...): the API's unconfirmed corner
        self.opportunity_search = OpportunitySearchAnswers()
        self.latency = Latency(self.config.latency_ms, self.config.latency_per_record_ms)
        self.gateway = Gateway(self.world, self.limiter, self.faults, self.latency)
        self.oauth = OAuthState(self.world)
        self.gateway.suspended = self.oauth.suspended
        self.webhooks = WebhookEmitter(self.config.client_id.split("-")[0])
        self.app = build_app(self)
        self.host = "127.0.0.1"
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, port: int = 0) -> Sandbox:
        """Serve on 127.0.0.1 (`port` 0: a free port the OS picks) from a daemon thread."""
        if self._server is not None:
            return self
        config = uvicorn.Config(self.app, host=self.host, port=port, log_level="warning", lifespan="off",
                                access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="highlevel-sandbox", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                raise RuntimeError(f"sandbox did not start within {START_TIMEOUT_S:.0f} s on {self.host}:{port}")
            time.sleep(0.005)
        self.port = int(server.servers[0].sockets[0].getsockname()[1])
        self._server, self._thread = server, thread
        logger.info("HighLevel sandbox serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=STOP_TIMEOUT_S)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- who is who -----------------------------------------------------------------------------

    @property
    def location_ids(self) -> list[str]:
        return list(self.world.locations)

    @property
    def company_id(self) -> str:
        return self.world.company_id

    def token_for(self, location_id: str) -> str:
        """The location's Private Integration Token (`pit-<uuid4>`), valid for that location only."""
        return self.world.pits[location_id]

    def info(self) -> dict[str, Any]:
        """What a client of a separately running sandbox needs: ids, tokens, limits."""
        config = asdict(self.config)
        config.pop("client_secret")
        return {"location_ids": self.location_ids, "company_id": self.company_id, "tokens": dict(self.world.pits),
                "client_id": self.config.client_id,
                "locations": [{"id": loc.id, "name": loc.record["name"], "timezone": loc.record["timezone"],
                               "contacts": len(loc.contacts.truth)} for loc in self.world.locations.values()],
                "rate_limits": {"max": self.limiter.max_requests, "interval_ms": self.limiter.interval_ms,
                                "daily_quota": self.limiter.daily_quota},
                "latency": {"fixed_ms": self.latency.fixed_ms, "per_record_ms": self.latency.per_record_ms},
                "config": config}

    # -- ground truth (ignores index lag) -------------------------------------------------------

    def truth_contacts(self, location_id: str) -> list[dict[str, Any]]:
        """Current contacts as the API shapes them (no `searchAfter`), sorted by id, deleted excluded."""
        with self.world.lock:
            rows = sorted(self.world.locations[location_id].contacts.truth.values(), key=lambda r: r["id"])
            return copy.deepcopy(rows)

    def truth_custom_fields(self, location_id: str, model: str = "contact") -> list[dict[str, Any]]:
        return copy.deepcopy(self.world.locations[location_id].fields_of(model))

    def truth_users(self, location_id: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.world.locations[location_id].users)

    def truth_location(self, location_id: str) -> dict[str, Any]:
        return copy.deepcopy(self.world.locations[location_id].record)

    def truth(self, location_id: str, family: str) -> list[dict[str, Any]]:
        """Ground truth of another family: opportunities, pipelines, conversations, messages,
        calendars or events (appointments), as the API would return them, ignoring index lag.
        Also object_schemas, object_records (every custom object's), object_fields, associations,
        relations, campaigns, workflows, tags, custom_values, links and businesses. Also forms,
        form_submissions, surveys, survey_submissions, invoices, orders, transactions,
        subscriptions, products and product_prices (keyed `_id` where the API says so)."""
        if family == "object_records":
            return objects_changes.truth_records(self.world, location_id)
        with self.world.lock:
            return copy.deepcopy(sorted(crm.iter_values(self.world.locations[location_id], family),
                                        key=lambda r: r["id"] if "id" in r else r["_id"]))

    # -- mutations (stamped now; search sees them after the index lag) --------------------------

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
        before = {c["id"]: c for c in self.truth_contacts(location_id)} if notify else {}
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

    def move_opportunities(self, location_id: str, n: int) -> list[str]:
        return crm.move_opportunities(self.world, location_id, n)

    def add_custom_field(self, location_id: str, name: str, data_type: str, model: str = "contact",
                         options: tuple[str, ...] = ()) -> dict[str, Any]:
        """Define a new custom field (a user adding one in the settings); no record has a value yet."""
        return fields.add_custom_field(self.world, location_id, name, data_type, model, options)

    def add_messages(self, location_id: str, channels: list[str]) -> list[str]:
        return crm.add_messages(self.world, location_id, channels)

    def read_messages(self, location_id: str, n: int) -> list[str]:
        return crm.read_messages(self.world, location_id, n)

    def reschedule_appointments(self, location_id: str, n: int, cancel: int = 0) -> list[str]:
        return crm.reschedule_appointments(self.world, location_id, n, cancel)

    def add_calendar(self, location_id: str, appointments: int) -> tuple[str, list[str]]:
        return crm.add_calendar(self.world, location_id, appointments)

    def edit_contact(self, location_id: str, contact_id: str, **changes: Any) -> dict[str, Any]:
        """Change one contact's fields (API names, e.g. customFields=[...]); stamped now."""
        return self.world.edit_contact(location_id, contact_id, changes)

    def edit_appointment(self, location_id: str, event_id: str, notify: str | None = None,
                         **changes: Any) -> dict[str, Any]:
        """Correct one appointment, whatever its date; with `notify` also deliver AppointmentUpdate."""
        event = crm.edit_appointment(self.world, location_id, event_id, changes)
        if notify:
            self.webhooks.deliver(notify, self.webhooks.event("AppointmentUpdate", location_id, event))
        return event

    def delete_appointment(self, location_id: str, event_id: str) -> None:
        """Delete one appointment silently (no webhook: the sweep must find it)."""
        crm.delete_appointment(self.world, location_id, event_id)

    def tie_conversations(self, location_id: str, first: int, count: int) -> list[str]:
        """Make conversations [first, first + count) of the newest-first order share one
        `lastMessageDate` millisecond (see crm.tie_conversations)."""
        return crm.tie_conversations(self.world, location_id, first, count)

    def update_records(self, location_id: str, object_key: str, n: int, notify: str | None = None) -> list[str]:
        """Update n records of a custom object; with `notify` also deliver RecordUpdate webhooks."""
        ids = objects_changes.update_records(self.world, location_id, object_key, n)
        records = objects_changes.current_records(self.world, location_id, object_key, ids) if notify else []
        objects_changes.notify(self.webhooks, notify, "RecordUpdate", location_id, records)
        return ids

    def delete_records(self, location_id: str, object_key: str, n: int, notify: str | None = None) -> list[str]:
        """Delete n records of a custom object and their relations; with `notify` also deliver
        RecordDelete webhooks (and none for the relations that go with them)."""
        gone = objects_changes.delete_records(self.world, location_id, object_key, n)
        objects_changes.notify(self.webhooks, notify, "RecordDelete", location_id, gone)
        return [str(record["id"]) for record in gone]

    def add_relation(self, location_id: str, notify: str | None = None) -> str:
        """Relate a custom-object record to a contact; with `notify` also deliver RelationCreate."""
        relation = objects_changes.add_relation(self.world, location_id)
        objects_changes.notify(self.webhooks, notify, "RelationCreate", location_id, [relation])
        return str(relation["id"])

    def rename_tag(self, location_id: str) -> str:
        return account_lists.rename_tag(self.world, location_id)

    def add_object_field(self, location_id: str, object_key: str, name: str, data_type: str,
                         options: tuple[str, ...] = ()) -> dict[str, Any]:
        """Define a field on a custom object; records get values for it when next updated."""
        return objects_changes.add_object_field(self.world, location_id, object_key, name, data_type, options)

    def before_request(self, path_prefix: str, action: Any, after: int = 0) -> None:
        """Run `action()` once, just before the (after + 1)-th API request under `path_prefix` is
        served: someone editing the account while a client is in the middle of a read."""
        self.gateway.before_request(path_prefix, action, after)

    def wait_for_index(self) -> None:
        """Sleep until every write made so far is visible to search."""
        self.world.wait_for_index()

    # -- request log ------------------------------------------------------------------------------

    def requests(self, path_prefix: str | None = None) -> list[dict[str, Any]]:
        """API requests served so far, oldest first: {ts, method, path, query, body, location_id, status, ...}."""
        return [dict(e) for e in list(self.gateway.log) if path_prefix is None or e["path"].startswith(path_prefix)]

    def clear_requests(self) -> None:
        self.gateway.log.clear()

    # -- rate limits --------------------------------------------------------------------------------

    def set_rate_limits(self, max: int | Keep | None = KEEP, interval_ms: int | Keep = KEEP,
                        daily_quota: int | Keep | None = KEEP) -> None:
        """Change the limits at run time (omitted ones stay; None switches one off); counting restarts."""
        self.limiter.configure(max, interval_ms, daily_quota)

    def set_latency(self, fixed_ms: float | Keep = KEEP, per_record_ms: float | Keep = KEEP) -> None:
        """Change the latency model at run time (omitted ones stay): every API answer waits
        `fixed_ms` plus `per_record_ms` per record it carries; concurrent requests overlap."""
        self.latency.set(fixed_ms, per_record_ms)

    def reset_rate_limits(self) -> None:
        """Back to the configured limits, with nothing counted."""
        self.limiter.configure(self.config.rate_limit_max, self.config.rate_limit_interval_ms,
                               self.config.daily_quota)

    # -- OAuth control ------------------------------------------------------------------------------

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

    def revoke_scopes(self, location_id: str, scopes: list[str] | set[str] | tuple[str, ...]) -> None:
        """Take `scopes` from the location's PIT and OAuth tokens (refreshes keep them out too):
        its requests then get HighLevel's 401 "The token is not authorized for this scope."."""
        revoke(self.world, self.oauth, location_id, frozenset(scopes))

    def suspend(self, location_id: str) -> None:
        self.oauth.suspended.add(location_id)

    def uninstall(self, location_id: str) -> None:
        self.oauth.installed.discard(location_id)

    @property
    def burned_tokens(self) -> int:
        return self.oauth.burned


def serve(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted (for `highlevel-sync sandbox serve`). Loopback unless told otherwise:
    the sandbox has no real auth on its control routes."""
    sb = Sandbox(config)
    logger.info("HighLevel sandbox on http://%s:%d with %d locations", host, port, len(sb.location_ids))
    uvicorn.run(sb.app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
