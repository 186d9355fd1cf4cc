"""`highlevel-sync webhooks serve`: the receiver, wired to incremental runs through `run_sync`.

Triggered runs use the same state-based cursors as scheduled ones (never an external scheduler's
interval), for just the resources the events marked dirty. App installs and uninstalls change
which locations `--locations all` syncs: a location whose app was uninstalled is skipped. A new
location (LocationCreate) gets its first sync, and a new agency user (UserCreate) a users refresh
of its sub-accounts, when the configured credentials can read them (`can_reach`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sources.highlevel.config import SourceConfig, load_config
from sources.highlevel.errors import HighLevelError

from .credentials import resolve_credentials
from .installs import InstallRegistry
from .sync import SyncRequest, open_inbox, run_sync

logger = logging.getLogger("highlevel.webhook_runs")


class SyncFailed(HighLevelError):
    """Raised to the debouncer so it keeps the dirty marks and retries later."""


def sync_location(location_id: str, resources: set[str], request: SyncRequest | None = None) -> Any:
    """One incremental run for one location and the dirty resources; raises when it failed."""
    base = request or SyncRequest()
    config = load_config()
    # notes are opt-in: NoteCreate/Update/Delete only lead to a notes read when `sync_notes` is on
    chosen = sorted(r for r in resources if r != "notes" or config.sync_notes)
    if "notes" in resources and not config.sync_notes:
        _forget_note_changes(location_id, base)
    # relations likewise: Relation* webhooks only lead to a relations read when `sync_relations` is on
    if "relations" in chosen and not config.sync_relations:
        chosen.remove("relations")
        _forget_note_changes(location_id, base, "relations")
    if not chosen:
        logger.info("location %s: only notes changed and sync_notes is off; nothing to run", location_id)
        return None
    # the events chose the resources, not the user: one the token may not read is skipped, not retried
    result = run_sync(SyncRequest(**{**base.__dict__, "locations": [location_id], "resources": chosen,
                                     "skip_unauthorised": True}),
                      config=config)
    if not result.ok:
        raise SyncFailed(f"triggered run for location {location_id} failed: {result.locations[0].error}")
    logger.info("triggered run for location %s (%s) done in %.1f s", location_id, ", ".join(chosen), result.seconds)
    return result


def _forget_note_changes(location_id: str, request: SyncRequest, resource: str = "notes") -> None:
    """Notes are off, so the contacts note webhooks named are owed nothing: they leave the inbox
    instead of staying pending forever (pending rows are never pruned). Nothing is lost if notes
    are turned on later: the first notes read covers every loaded contact."""
    inbox = open_inbox(request)
    if inbox is None:
        return
    try:
        dropped = inbox.mark_changes_applied(inbox.pending_changes(location_id, resource))
    finally:
        inbox.close()
    if dropped:
        logger.info("location %s: %d %s change(s) dropped, sync_%s is off", location_id, dropped, resource, resource)


def can_reach(location_id: str, config: SourceConfig | None = None) -> bool:
    """Whether this deployment's credentials can read `location_id`.

    A Private Integration Token reads only its own (configured) location. OAuth reads a location
    whose token is stored, or one an agency token can mint a token for: only where the app is
    installed (minting stores the token, which the location's first sync then uses). Locations that
    uninstalled the app are out. Credential problems (none configured, store unreadable) are a "no".
    """
    config = config or load_config()
    if location_id in InstallRegistry(config.token_store).uninstalled():
        return False
    try:
        credentials = resolve_credentials(config, None)
    except HighLevelError as exc:
        logger.info("location %s: no usable credentials to reach it (%s)", location_id, exc)
        return False
    if credentials.manager is None:  # a PIT: its one configured location
        return location_id in (credentials.locations or [])
    try:
        credentials.manager.current(location_id)
    except HighLevelError as exc:
        logger.info("location %s: the stored tokens cannot read it (%s)", location_id, exc)
        return False
    return True


def serve_webhooks(host: str, port: int, airflow_url: str | None, airflow_dag: str,
                   airflow_api: str = "auto") -> int:
    from sources.highlevel.webhooks import AirflowTrigger, InProcessTrigger, WebhookConfig
    from sources.highlevel.webhooks.server import serve

    config = WebhookConfig.from_dlt()
    trigger: Any
    if airflow_url:
        user, password = os.environ.get("AIRFLOW_USERNAME"), os.environ.get("AIRFLOW_PASSWORD")
        trigger = AirflowTrigger(airflow_url, airflow_dag, auth=(user, password) if user and password else None,
                                 api_version=airflow_api, token=os.environ.get("AIRFLOW_API_TOKEN") or None)
    else:
        trigger = InProcessTrigger(lambda location_id, resources: sync_location(location_id, resources))
    token_store = load_config().token_store
    registry = InstallRegistry(token_store)

    def on_install(location_id: str | None, company_id: str | None) -> None:
        if location_id:
            registry.mark_installed(location_id)
            logger.info("app installed in location %s: included in `--locations all` runs", location_id)

    def on_uninstall(location_id: str | None, company_id: str | None) -> None:
        if location_id:
            registry.mark_uninstalled(location_id, token_store)
            logger.warning("app uninstalled from location %s: it is no longer synced", location_id)
    print(f"Receiving HighLevel webhooks on http://{host}:{port}/webhooks/highlevel (health: /healthz); "
          f"inbox {config.inbox_path}")
    serve(config, host=host, port=port, trigger=trigger, on_install=on_install, on_uninstall=on_uninstall,
          reachable=can_reach)
    return 0
