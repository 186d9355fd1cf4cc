"""HighLevel's side of webhooks: signed deliveries of change events to a receiver URL.

The sandbox signs with its own Ed25519 (and optionally RSA) test key, as HighLevel signs with its
published keys; point the receiver at `public_pem()`. It can also send what real deliveries
contain on bad days: duplicates (same webhookId twice) and the documented mislabelled types.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class WebhookEmitter:
    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self._key = Ed25519PrivateKey.generate()
        self.sent: list[dict[str, Any]] = []

    def public_pem(self) -> str:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def event(self, event_type: str, location_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """A delivery body: the record's fields flat at the top level, as the published examples are."""
        body = {**record, "type": event_type, "locationId": location_id,
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "webhookId": str(uuid.uuid4())}
        if event_type.startswith("Appointment"):
            body = {"type": event_type, "locationId": location_id, "appointment": record,
                    "timestamp": body["timestamp"], "webhookId": body["webhookId"]}
        return body

    def deliver(self, url: str, body: dict[str, Any], times: int = 1, timeout_s: float = 10.0) -> list[int]:
        """POST the signed body `times` times (duplicates keep the webhookId); return the statuses."""
        raw = orjson.dumps(body)
        signature = base64.b64encode(self._key.sign(raw)).decode()
        statuses = []
        for _ in range(times):
            response = httpx.post(url, content=raw, timeout=timeout_s,
                                  headers={"Content-Type": "application/json", "X-GHL-Signature": signature})
            statuses.append(response.status_code)
            self.sent.append({"ts": time.time(), "type": body.get("type"), "status": response.status_code})
        return statuses
