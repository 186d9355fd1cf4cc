"""Secrets audit (issue 12, item 6): no token and no client secret outside the token store.

A real OAuth agency sync through the CLI (with `--debug`, and tokens so short-lived that refreshes
and location-token minting happen mid-run) and a signed webhook delivery that triggers an
in-process run write many files: dlt state, load packages, trace files, the DuckDB file (whose
`_dlt_pipeline_state` rows hide the state as zlib+base64 JSON), the webhook inbox SQLite, logs.
Every one of them, plus all captured output and log records, is scanned for every secret the
sandbox issued. Only the token store (mode 0600) may hold a token. A hit is reported by where it
is (file, decoding layer, offset) and by kind, never by the secret's value, so the failure message
does not become a leak of its own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import logging
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from highlevel_sync.sync import SyncRequest, duckdb_destination
from highlevel_sync.webhook_runs import sync_location
from sources.highlevel.webhooks import InProcessTrigger, WebhookConfig
from sources.highlevel.webhooks.server import Receiver
from tests.webhooks.conftest import ThreadServer

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = "contacts,custom_fields,users,locations,opportunities,forms,form_submissions,invoices,transactions"
# base64 runs long enough to hide a compressed blob (dlt's state in `_dlt_pipeline_state`, packages)
B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")
SKIP_DIRS = {".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@dataclass(frozen=True)
class Hit:
    """Where a secret was found; deliberately without the secret itself."""

    where: str
    layer: str
    offset: int
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.where} [{self.layer}] at offset {self.offset}"


class Scanner:
    """Finds secrets in bytes, unwrapping the encodings a run's files use (gzip, zlib+base64, SQL tables)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = {value.encode(): kind for value, kind in secrets.items() if value}
        self.hits: list[Hit] = []
        self.scanned: list[str] = []  # what was looked at, decoded layers included (for the positive checks)

    def scan_bytes(self, data: bytes, where: str, layer: str = "raw", depth: int = 0) -> None:
        self.scanned.append(f"{where} [{layer}]")
        for secret, kind in self.secrets.items():
            start = data.find(secret)
            while start != -1:
                self.hits.append(Hit(where, layer, start, kind))
                start = data.find(secret, start + 1)
        if depth >= 3:
            return
        if data[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError, EOFError):
                self.scan_bytes(gzip.decompress(data), where, f"{layer}>gzip", depth + 1)
        for match in B64_RUN.finditer(data):
            self._scan_encoded(match.group(), where, f"{layer}>b64@{match.start()}", depth)

    def _scan_encoded(self, blob: bytes, where: str, layer: str, depth: int) -> None:
        """A base64 run that decodes to zlib (or gzip) data is scanned decoded, like dlt's stored state."""
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(blob + b"=" * (-len(blob) % 4))
            except (binascii.Error, ValueError):
                continue
            for name, unpack in (("zlib", zlib.decompress), ("gzip", gzip.decompress)):
                try:
                    inner = unpack(raw)
                except (zlib.error, OSError, EOFError):
                    continue
                self.scan_bytes(inner, where, f"{layer}>{name}", depth + 1)
                return

    def scan_file(self, path: Path) -> None:
        data = path.read_bytes()
        self.scan_bytes(data, str(path))
        if data.startswith(b"SQLite format 3"):
            self._scan_sqlite(path)
        elif data[8:12] == b"DUCK":
            self._scan_duckdb(path)
        elif data[:4] == b"PAR1":
            self._scan_parquet(path)

    def _scan_sqlite(self, path: Path) -> None:
        """Page compression aside, SQLite text is plain; dump every table anyway (and its WAL'd rows)."""
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
            for table in tables:
                for n, row in enumerate(con.execute(f'select * from "{table}"')):
                    self.scan_bytes(_row_bytes(row), str(path), f"table {table} row {n}")

    def _scan_duckdb(self, path: Path) -> None:
        """DuckDB compresses its blocks: read every table of every schema, decoding `_dlt_pipeline_state`."""
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
            for schema, table in tables:
                rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
                for n, row in enumerate(rows):
                    self.scan_bytes(_row_bytes(row), str(path), f"table {schema}.{table} row {n}")
                if table == "_dlt_pipeline_state":
                    for n, (state,) in enumerate(con.execute(f'select state from "{schema}"."{table}"').fetchall()):
                        decoded = zlib.decompress(base64.b64decode(state))
                        self.scan_bytes(decoded, str(path), f"table {schema}.{table} row {n} state>zlib")

    def _scan_parquet(self, path: Path) -> None:
        import pyarrow.parquet as pq

        for n, row in enumerate(pq.read_table(path).to_pylist()):
            self.scan_bytes(_row_bytes(tuple(row.values())), str(path), f"parquet row {n}")


def _row_bytes(row: tuple[Any, ...]) -> bytes:
    return "\x00".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row).encode()


def snapshot(roots: list[Path]) -> dict[Path, tuple[float, int]]:
    """mtime and size of every file under `roots`, to find the files a run wrote outside tmp_path."""
    seen: dict[Path, tuple[float, int]] = {}
    for root in roots:
        for path in walk(root):
            info = path.stat()
            seen[path] = (info.st_mtime, info.st_size)
    return seen


def walk(root: Path) -> Iterator[Path]:
    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


class Collector(logging.Handler):
    """Every log record of the in-process run, formatted with its exception and stack text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record) + f" args={record.args!r}")


@pytest.fixture
def collected_logs() -> Iterator[Collector]:
    """DEBUG everywhere, including dlt's own logger (which does not propagate to the root)."""
    collector = Collector()
    loggers = [logging.getLogger(), logging.getLogger("dlt")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(collector)
        lg.setLevel(logging.DEBUG)
    yield collector
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(collector)
        lg.setLevel(level)


def wait_for(condition: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the webhook-triggered run"
        time.sleep(0.05)


def test_no_secret_outside_the_token_store(highlevel_sandbox_factory: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, collected_logs: Collector,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(120, 60, 40), index_lag_s=0.2, access_token_ttl_s=2.0)
    store_path = tmp_path / "tokens.json"
    db_path = tmp_path / "hl.duckdb"
    pipelines_dir = tmp_path / "pipelines"
    inbox_path = tmp_path / "inbox.sqlite"
    env = {
        "SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
        "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": sb.client_id,
        "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": sb.client_secret,
        "SOURCES__HIGHLEVEL__TOKEN_STORE": str(store_path),
        "SOURCES__HIGHLEVEL__WEBHOOK_INBOX_PATH": str(inbox_path),
        "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "6",
        "DESTINATION__DUCKDB__CREDENTIALS": str(db_path),
    }
    watched = [ROOT, Path.home() / ".dlt"]
    before = snapshot(watched)
    started = time.time()
    outputs: dict[str, str] = {}

    def cli(label: str, *args: str) -> None:
        child_env = {**os.environ, **env}
        child_env.pop("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", None)
        proc = subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "--debug", *args], cwd=ROOT,
                              env=child_env, capture_output=True, text=True, timeout=120)
        outputs[f"{label} stdout"], outputs[f"{label} stderr"] = proc.stdout, proc.stderr
        assert proc.returncode == 0, f"{label} exited {proc.returncode}:\n{proc.stderr[-3000:]}"

    # (1) an agency sync through the CLI: every request is slow enough that 2 s tokens expire mid-run,
    # and some fail (retried), so error paths log exception text too
    cli("auth import", "auth", "import", "--refresh-token", sb.grant("Company"), "--user-type", "Company",
        "--company-id", sb.company_id)
    sb.faults.set(slow_rate=1.0, slow_ms=400, error_rate=0.05, error_statuses=(429, 500, 502))
    cli("run", "run", "--locations", "all", "--resources", RESOURCES, "--pipelines-dir", str(pipelines_dir))
    sb.faults.clear()
    log = sb.requests()
    assert len([r for r in log if r["path"] == "/oauth/token"]) >= 2, "no refresh happened during the run"
    assert len([r for r in log if r["path"] == "/oauth/locationToken"]) >= 3, "no location token was minted"
    assert any(r["status"] >= 429 for r in log), "no request failed: the error paths were not exercised"
    # the triggered run below rewrites the trace and adds packages: keep what the CLI run left
    shutil.copytree(pipelines_dir, tmp_path / "as-left-by-the-cli-run")

    # (2) a signed delivery into the receiver triggers an in-process run with the same OAuth store
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", raising=False)
    location = sb.location_ids[1]
    time.sleep(2.5)  # the stored location token has expired: the triggered run refreshes it
    request = SyncRequest(destination=duckdb_destination(db_path), pipelines_dir=str(pipelines_dir),
                          inbox_path=str(inbox_path))
    runs: list[str] = []
    errors: list[str] = []

    def triggered(location_id: str, resources: set[str]) -> None:
        try:
            sync_location(location_id, resources, request)
        except Exception as exc:  # kept (as text) for the scan and the assertion below
            errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            runs.append(location_id)

    config = WebhookConfig(ed25519_public_key=sb.webhooks.public_pem(), inbox_path=str(inbox_path),
                           quiet_s=0.2, max_delay_s=2.0)
    receiver = Receiver(config, InProcessTrigger(triggered)).start()
    server = ThreadServer(receiver.app).start()
    try:
        contact = sb.truth_contacts(location)[0]
        statuses = sb.webhooks.deliver(f"{server.url}/webhooks/highlevel",
                                       sb.webhooks.event("ContactUpdate", location, contact))
        assert all(s < 300 for s in statuses), statuses
        wait_for(lambda: bool(runs) and not receiver.debouncer.running)
    finally:
        server.stop()
        receiver.stop(timeout=10)
    assert runs == [location] and not errors, errors

    # every secret the sandbox handed out, by kind
    secrets: dict[str, str] = {sb.client_secret: "client secret"}
    for token in sb.world.tokens:
        info = sb.world.tokens.lookup(token)
        if token.startswith("pit-") or (info is not None and info.kind == "pit"):
            secrets[token] = "private integration token"
        elif info is not None and info.location_id:
            secrets[token] = "location access token"
        else:
            secrets[token] = "access token"
    for token in [*sb.oauth.refresh_tokens, *sb.oauth.spent]:
        secrets[token] = "refresh token"
    assert sum(kind == "refresh token" for kind in secrets.values()) >= 3
    assert sum(kind == "location access token" for kind in secrets.values()) >= 3

    # the token store: the one place tokens may live, readable by its owner only
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600, oct(store_path.stat().st_mode)
    assert any(token.encode() in store_path.read_bytes() for token in sb.oauth.refresh_tokens)

    scanner = Scanner(secrets)
    written = [p for p in walk(tmp_path) if p != store_path]
    after = snapshot(watched)
    written += [p for p, seen in after.items() if before.get(p) != seen and seen[0] >= started - 1]
    assert pipelines_dir.is_dir() and inbox_path.exists() and db_path.exists()
    assert any(p.name.startswith("trace") for p in written), "no dlt trace file was written"
    for path in sorted(set(written)):  # side files of the store (lock, temp) included
        scanner.scan_file(path)
    if os.environ.get("SECRETS_AUDIT_VERBOSE"):
        print("\n".join(scanner.scanned))
    # the decoding really happened: dlt's compressed state was read from the destination and a package
    assert any("_dlt_pipeline_state" in s and "state>zlib" in s for s in scanner.scanned)
    assert any(">zlib" in s and "/load/" in s for s in scanner.scanned), "no compressed state in a load package"
    control = Scanner(secrets)  # the scanner does find what is there: the store holds the live refresh token
    control.scan_file(store_path)
    assert any(hit.kind == "refresh token" for hit in control.hits)
    for label, text in outputs.items():
        scanner.scan_bytes(text.encode(), label)
    captured = capfd.readouterr()  # whatever the in-process run and the receiver printed
    scanner.scan_bytes((captured.out + captured.err).encode(), "in-process stdout/stderr")
    for n, text in enumerate(collected_logs.texts):
        scanner.scan_bytes(text.encode(), f"log record {n}")
    assert collected_logs.texts, "the in-process run logged nothing: the log capture is broken"

    assert not scanner.hits, f"{len(scanner.hits)} secret(s) found outside the token store:\n" + "\n".join(
        str(hit) for hit in scanner.hits[:40])
