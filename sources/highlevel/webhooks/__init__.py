"""Optional webhook receiver: verify HighLevel's signatures, keep deliveries in a durable inbox,
record deletes, and trigger debounced incremental syncs.

The source never imports this package; this package uses the source only through its public modules.

    from sources.highlevel.webhooks import WebhookConfig, InProcessTrigger, serve
    serve(WebhookConfig.from_dlt(), port=8080, trigger=InProcessTrigger(run_one_location))
"""

from __future__ import annotations

from .airflow import AirflowTrigger
from .app import create_app
from .config import WebhookConfig
from .debounce import Debouncer, InProcessTrigger, Trigger, TriggerError
from .events import WebhookEvent, classify, parse_event
from .inbox import DEFAULT_INBOX_PATH, Deletion, Inbox, StoredEvent
from .processor import SYNC_RESOURCES, Processor
from .server import Receiver, serve
from .verify import SignatureError, SignatureVerifier, load_public_keys

__all__ = [
    "DEFAULT_INBOX_PATH",
    "SYNC_RESOURCES",
    "AirflowTrigger",
    "Debouncer",
    "Deletion",
    "InProcessTrigger",
    "Inbox",
    "Processor",
    "Receiver",
    "SignatureError",
    "SignatureVerifier",
    "StoredEvent",
    "Trigger",
    "TriggerError",
    "WebhookConfig",
    "WebhookEvent",
    "classify",
    "create_app",
    "load_public_keys",
    "parse_event",
    "serve",
]
