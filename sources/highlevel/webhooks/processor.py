"""Turn pending inbox events into effects, off the request path.

Webhooks are hints, not data (CONTRACT §6.1: HighLevel drops what it cannot deliver, so the API stays
the source of truth): a create/update marks (location, resource) dirty for a debounced sync, a
`*Delete` also leaves a tombstone for the sync to apply, and app INSTALL/UNINSTALL call hooks so the
owner can start or stop syncing a location. Every effect is idempotent (upserts), and events are
marked processed only after their effects are committed, so re-processing after a crash is harmless.
Hooks are called at least once and must be idempotent too.

Some events need more than a dirty mark:
- an appointment create/update also notes the appointment's id: the sync re-reads only a window of
  appointment dates, and reads the noted ones by id whatever their date;
- a note create/update notes the note's contact: notes are read per contact, for the contacts that
  changed, and adding a note need not change the contact;
- an invoice, order or product create/update notes the record too: payments are listed only by
  creation date, so an old invoice paid today is read by id (a 404 there makes it a deletion);
  products are listed in full every run, so for them the note is only marked applied;
- every Price* event, a PriceDelete too, notes the price's product under "product_prices": prices
  are read per product, and the re-read drops a deleted price, so a price is never tombstoned alone;
- a RecordCreate/Update notes the custom-object record (read by id; the payload names no object);
  a RelationCreate/Delete notes its custom-object record(s) under "relations": relations are read
  per record, and the re-read drops a deleted relation;
- `LocationCreate` is a new sub-account: if `reachable(location)` says this deployment's token can
  read it, every resource is marked dirty, which is its first sync;
- an agency-level `UserCreate` carries no `locationId` but a `locations` list: the users of each
  reachable one are marked dirty.
The processor also prunes the inbox on a schedule (`retention`): processed events, and deletions
and changes a sync applied, older than that are deleted; pending ones always stay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..settings import DEFAULT_RESOURCES
from .events import parse_timestamp
from .inbox import Inbox, StoredEvent, utc_iso

logger = logging.getLogger("highlevel.webhooks.processor")

# Event resource → the sync resources (names in sources.highlevel.RESOURCE_NAMES) it makes stale.
# A message also moves its conversation's lastMessageDate. App events are lifecycle, not data: they
# mark nothing.
SYNC_RESOURCES: dict[str, tuple[str, ...]] = {
    "contacts": ("contacts",),
    "opportunities": ("opportunities",),
    "appointments": ("appointments",),
    "messages": ("messages", "conversations"),
    "conversations": ("conversations",),
    "locations": ("locations",),
    "users": ("users",),
    "tasks": ("tasks",),
    "notes": ("notes",),  # opt-in: a triggered run drops it unless `sync_notes` is on
    "invoices": ("invoices",),
    "orders": ("orders",),
    "products": ("products", "product_prices"),  # a new product brings prices, a deleted one takes them along
    "product_prices": ("product_prices",),
    "object_records": ("object_records",),
    "relations": ("relations",),  # opt-in: a triggered run drops it unless `sync_relations` is on
}

# A new location's first sync: everything (deletions is added by the sync itself).
FIRST_SYNC_RESOURCES = tuple(name for name in DEFAULT_RESOURCES if name != "deletions")
# Resources whose changed records the sync reads by id (no listing it makes is sure to show them).
READ_BY_ID = ("appointments", "invoices", "orders", "products", "object_records")

InstallHook = Callable[[str | None, str | None], Any]  # (location_id, company_id); location None = agency level
UninstallHook = Callable[[str | None, str | None], Any]
Reachable = Callable[[str], bool]  # can this deployment's token read that location?


class Processor:
    """Applies pending events; `process_pending()` is one pass, `start()` runs passes on a background thread."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        on_install: InstallHook | None = None,
        on_uninstall: UninstallHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        batch_size: int = 500,
        poll_s: float = 5.0,
        max_hook_attempts: int = 5,
        reachable: Reachable | None = None,
        retention: timedelta | None = None,
        prune_every_s: float = 3600.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`reachable` decides whether new locations (LocationCreate, agency UserCreate) are synced;
        None: every location is. `retention` None keeps the inbox forever."""
        self.inbox = inbox
        self.on_install = on_install
        self.on_uninstall = on_uninstall
        self.clock = clock  # must be the debouncer's clock: dirty marks are compared against it
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.max_hook_attempts = max_hook_attempts
        self.reachable = reachable
        self.retention = retention
        self.prune_every_s = prune_every_s
        self.wall_clock = wall_clock
        self.pruned = 0
        self._next_prune: float | None = None  # on self.clock; None: prune on the next check
        self.last_error: str | None = None
        self._hook_failures: dict[int, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ---------------------------------------------------------------------------------

    def process_pending(self) -> int:
        """Apply every pending event (in batches); return how many were marked processed."""
        done_total = 0
        while not self._stop.is_set():
            batch = []
            for event in self.inbox.pending_events(self.batch_size):
                if self._hook_failures.get(event.id, 0) >= self.max_hook_attempts:
                    self._give_up(event)
                else:
                    batch.append(event)
            if not batch:
                return done_total
            done = self._apply(batch)
            done_total += len(done)
            if len(done) < len(batch):  # a hook failed: retry those on the next poll, not in a hot loop
                return done_total
        return done_total

    def _apply(self, batch: list[StoredEvent]) -> list[int]:
        dirty: set[tuple[str, str]] = set()
        done: list[int] = []
        for event in batch:
            if event.action in ("install", "uninstall") and not self._call_hook(event):
                continue
            try:
                dirty.update(self._marks(event))
            except Exception as exc:  # the reachability check failed (token store, network): retry later
                self._hook_failures[event.id] = self._hook_failures.get(event.id, 0) + 1
                self.last_error = f"reachability check failed for event {event.webhook_id}: {type(exc).__name__}"
                logger.exception("reachability check failed for event %s; will retry", event.webhook_id)
                continue
            if event.location_id and event.record_id and SYNC_RESOURCES.get(event.resource):
                if event.resource == "product_prices":
                    # prices are read per product: the product is what the sync reads again; without
                    # one any key will do, since a noted price change re-reads every product's prices
                    self.inbox.record_change("product_prices", _price_product(event) or event.record_id,
                                             event.location_id)
                elif event.resource == "relations":
                    # relations are read per record: a created or deleted one re-reads its record's
                    for record_id in _related_records(event):
                        self.inbox.record_change("relations", record_id, event.location_id)
                elif event.action == "delete":
                    self.inbox.record_deletion(event.resource, event.record_id, event.location_id,
                                               _deleted_at(event), detected_by="webhook")
                elif event.action in ("create", "update") and event.resource in READ_BY_ID:
                    self.inbox.record_change(event.resource, event.record_id, event.location_id)
                elif event.action in ("create", "update") and event.resource == "notes":
                    # notes are read per contact: the note's contact is what the sync reads again
                    contact_id = _contact_id(event)
                    if contact_id:
                        self.inbox.record_change("notes", contact_id, event.location_id)
            done.append(event.id)
        now = self.clock()
        for location_id, resource in sorted(dirty):
            self.inbox.mark_dirty(location_id, resource, now)
        self.inbox.mark_processed(done)
        for event_id in done:
            self._hook_failures.pop(event_id, None)
        return done

    def _marks(self, event: StoredEvent) -> set[tuple[str, str]]:
        """The (location, resource) pairs an event makes stale."""
        if event.resource == "locations" and event.action == "create":
            if event.location_id and self._can_reach(event.location_id):
                logger.info("new location %s: its first sync is queued", event.location_id)
                return {(event.location_id, resource) for resource in FIRST_SYNC_RESOURCES}
            logger.info("new location %s is not readable with this deployment's token; not synced",
                        event.location_id)
            return set()
        resources = SYNC_RESOURCES.get(event.resource, ())
        if event.location_id:
            return {(event.location_id, resource) for resource in resources}
        if event.resource == "users":  # agency level: the user's sub-accounts are listed instead
            return {(location_id, "users") for location_id in _listed_locations(event) if self._can_reach(location_id)}
        return set()

    def _can_reach(self, location_id: str) -> bool:
        return self.reachable is None or bool(self.reachable(location_id))

    def prune_if_due(self) -> int:
        """Prune the inbox when `prune_every_s` has passed since the last prune (at once the first time)."""
        if self.retention is None:
            return 0
        now = self.clock()
        if self._next_prune is not None and now < self._next_prune:
            return 0
        self._next_prune = now + self.prune_every_s
        deleted = self.inbox.prune(before=self.wall_clock() - self.retention)
        self.pruned += deleted
        if deleted:
            logger.info("inbox pruned: %d processed or applied row(s) older than %s deleted", deleted, self.retention)
        return deleted

    def _call_hook(self, event: StoredEvent) -> bool:
        hook = self.on_install if event.action == "install" else self.on_uninstall
        if hook is None:
            return True
        try:
            hook(event.location_id, _company_id(event))
            return True
        except Exception as exc:
            self._hook_failures[event.id] = self._hook_failures.get(event.id, 0) + 1
            self.last_error = f"{event.action} hook failed for event {event.webhook_id}: {type(exc).__name__}"
            logger.exception("%s hook failed for event %s (location %s); will retry",
                             event.action, event.webhook_id, event.location_id)
            return False

    def _give_up(self, event: StoredEvent) -> None:
        logger.error("giving up on the %s hook for event %s after %d attempts; marking it processed",
                     event.action, event.webhook_id, self.max_hook_attempts)
        self.inbox.mark_processed([event.id])
        self._hook_failures.pop(event.id, None)

    # -- background thread ------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a pass now (the receiver calls this after each accepted delivery)."""
        self._wake.set()

    def start(self) -> Processor:
        self._stop.clear()
        self._wake.set()  # first pass at once: events a previous process accepted but did not apply
        self._thread = threading.Thread(target=self._loop, name="highlevel-webhook-processor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                self.process_pending()
                self.prune_if_due()
            except Exception as exc:  # e.g. the inbox disk is full: keep the thread, retry next poll
                self.last_error = f"processing failed: {type(exc).__name__}: {exc}"
                logger.exception("webhook processing pass failed; retrying in %.0f s", self.poll_s)
                self._stop.wait(self.poll_s)


def _company_id(event: StoredEvent) -> str | None:
    data = event.payload.get("data")
    body = data if isinstance(data, dict) else event.payload
    company = body.get("companyId") or event.payload.get("companyId")
    return company if isinstance(company, str) and company else None


def _listed_locations(event: StoredEvent) -> list[str]:
    """The `locations` list of an agency-level UserCreate (ids as text; anything else ignored)."""
    data = event.payload.get("data")
    body = data if isinstance(data, dict) else event.payload
    listed = body.get("locations")
    if not isinstance(listed, list):
        return []
    return [item for item in listed if isinstance(item, str) and item and len(item) <= 64]


def _contact_id(event: StoredEvent) -> str | None:
    data = event.payload.get("data")
    body = data if isinstance(data, dict) else event.payload
    contact = body.get("contactId")
    return contact if isinstance(contact, str) and contact and len(contact) <= 64 else None


def _price_product(event: StoredEvent) -> str | None:
    """The product a Price* event's price belongs to (its `product` field)."""
    data = event.payload.get("data")
    body = data if isinstance(data, dict) else event.payload
    product = body.get("product")
    return product if isinstance(product, str) and product and len(product) <= 64 else None


def _related_records(event: StoredEvent) -> list[str]:
    """The custom-object records of a Relation* event (a contact side is not read per record)."""
    data = event.payload.get("data")
    body = data if isinstance(data, dict) else event.payload
    found = []
    for key, record in (("firstObjectKey", "firstRecordId"), ("secondObjectKey", "secondRecordId")):
        object_key, record_id = body.get(key), body.get(record)
        if isinstance(object_key, str) and object_key.startswith("custom_objects.") and isinstance(record_id, str) \
                and record_id and len(record_id) <= 64:
            found.append(record_id)
    return found


def _deleted_at(event: StoredEvent) -> str:
    """When HighLevel says it happened (the delivery timestamp), else when we received it."""
    try:
        stamp = parse_timestamp(event.payload.get("timestamp"))
    except ValueError:
        stamp = None
    return utc_iso(stamp) if stamp else event.received_at
