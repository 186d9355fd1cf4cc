"""Which sub-accounts have uninstalled the app (from AppUninstall webhooks), so `--locations all`
skips them and `status` says why, until an AppInstall brings them back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from sources.highlevel.tokenstore import DEFAULT_TOKEN_STORE, atomic_write_json
from sources.highlevel.tokenstores import is_postgres_url, open_token_store

from .pginstalls import PostgresInstalls


class InstallRegistry:
    """Kept next to the token store, since both describe the app's installs: beside a token file as
    `highlevel_installs.json`; with a PostgreSQL token store, in a table of the same database
    (`pginstalls.py`), so an uninstall one worker's receiver records is seen by every shard."""

    def __init__(self, token_store: str | Path) -> None:
        self._shared = PostgresInstalls(str(token_store)) if is_postgres_url(token_store) else None
        beside = DEFAULT_TOKEN_STORE if is_postgres_url(token_store) else token_store
        self.path = Path(beside).parent / "highlevel_installs.json"
        self._lock = FileLock(str(self.path) + ".lock", timeout=60)

    def uninstalled(self) -> dict[str, str]:
        if self._shared is not None:
            return self._shared.uninstalled()
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return dict(data.get("uninstalled", {})) if isinstance(data, dict) else {}

    def _update(self, location_id: str, uninstalled: bool) -> None:
        if self._shared is not None:
            self._shared.mark(location_id, uninstalled)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            current = self.uninstalled()
            if uninstalled:
                current[location_id] = datetime.now(UTC).isoformat(timespec="seconds")
            else:
                current.pop(location_id, None)
            atomic_write_json(self.path, {"version": 1, "uninstalled": current})

    def mark_uninstalled(self, location_id: str, token_store: str | None = None) -> None:
        self._update(location_id, True)
        if token_store and (is_postgres_url(token_store) or Path(token_store).exists()):
            store = open_token_store(token_store)
            with store.lock():
                store.save(store.load().with_location(location_id, None))  # its token is dead anyway

    def mark_installed(self, location_id: str) -> None:
        self._update(location_id, False)
