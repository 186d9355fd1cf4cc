"""`highlevel-sync auth login | import | status`: get an OAuth grant into the token store, safely."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

from sources.highlevel.auth import COMPANY_KEY
from sources.highlevel.config import load_config
from sources.highlevel.endpoints import scope_of
from sources.highlevel.errors import AuthError, ConfigError
from sources.highlevel.oauth import AUTHORIZE_URL, READ_SCOPES
from sources.highlevel.settings import RESOURCE_NAMES
from sources.highlevel.tokenstore import StoreData, TokenSet, TokenStore
from sources.highlevel.tokenstores import describe_token_store, open_token_store

from .credentials import oauth_app

LOGIN_TIMEOUT_S = 300


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = sub.add_parser("auth", help="OAuth: login, import a refresh token, status")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True)
    login = auth_sub.add_parser("login", help="authorization-code flow with a local redirect listener")
    login.add_argument("--code", help="an authorization code you already have (skips the listener); "
                                      "write --code=VALUE if it starts with '-'")
    login.add_argument("--port", type=int, default=8976, help="local redirect listener port on 127.0.0.1")
    login.add_argument("--redirect-uri", help="redirect URI registered for the app (default the local listener)")
    login.add_argument("--user-type", choices=["Location", "Company"])
    imp = auth_sub.add_parser("import", help="store an existing refresh token (it is rotated immediately)")
    imp.add_argument("--refresh-token", required=True)
    imp.add_argument("--user-type", required=True, choices=["Location", "Company"])
    group = imp.add_mutually_exclusive_group()
    group.add_argument("--location-id")
    group.add_argument("--company-id")
    auth_sub.add_parser("status", help="who is authorised, for which locations, until when (never a token)")


def run(args: argparse.Namespace) -> int:
    config = load_config()
    store = open_token_store(config.token_store)
    if args.auth_command == "status":
        print(describe_store(store.load(), describe_token_store(config.token_store)))
        return 0
    app = oauth_app(config)
    if args.auth_command == "import":
        user_type = args.user_type
        if user_type == "Location" and not args.location_id:
            raise ConfigError("auth import --user-type Location needs --location-id")
        if user_type == "Company" and not args.company_id:
            raise ConfigError("auth import --user-type Company needs --company-id")
        seed = TokenSet(access_token="", refresh_token=args.refresh_token, user_type=user_type,
                        location_id=args.location_id, company_id=args.company_id)
        with store.lock():
            tokens = _merge_ids(app.refresh(seed), seed)  # the imported token is spent now: save at once
            save_grant(store, tokens)
    else:
        redirect_uri = args.redirect_uri or f"http://127.0.0.1:{args.port}/callback"
        code = args.code
        if not code:
            query = urlencode({"response_type": "code", "client_id": app.client_id, "redirect_uri": redirect_uri,
                               "scope": " ".join(READ_SCOPES)})
            print(f"Open this URL, choose the agency or sub-account, and approve:\n\n  {AUTHORIZE_URL}?{query}\n")
            print(f"Waiting up to {LOGIN_TIMEOUT_S // 60} min for the redirect on 127.0.0.1:{args.port} ...")
            code = wait_for_code(args.port, LOGIN_TIMEOUT_S)
        with store.lock():
            save_grant(store, app.exchange_code(code, redirect_uri=redirect_uri, user_type=args.user_type))
    print(describe_store(store.load(), describe_token_store(config.token_store)))
    return 0


def save_grant(store: TokenStore, tokens: TokenSet) -> None:
    """Add a grant to the store (caller holds the lock)."""
    data = store.load()
    if tokens.user_type == "Company":
        data = StoreData(company=tokens, locations=data.locations)
    else:
        if not tokens.location_id:
            raise AuthError("the token response named no locationId; re-run `highlevel-sync auth login`")
        data = data.with_location(tokens.location_id, tokens)
    store.save(data)


def _merge_ids(fresh: TokenSet, seed: TokenSet) -> TokenSet:
    return TokenSet(**{**fresh.to_json(), "scopes": fresh.scopes,
                       "location_id": fresh.location_id or seed.location_id,
                       "company_id": fresh.company_id or seed.company_id})


def describe_store(data: StoreData, path: str) -> str:
    lines = [f"Token store: {path}"]
    if data.company is None and not data.locations:
        lines.append("  empty: run `highlevel-sync auth login`")
    entries = ([(COMPANY_KEY, data.company)] if data.company else []) + sorted(data.locations.items())
    for key, tokens in entries:
        who = f"agency {tokens.company_id}" if key == COMPANY_KEY else f"location {key}"
        kind = "minted from agency token" if tokens.minted else f"{tokens.user_type} grant"
        left = tokens.expires_at - time.time()
        expiry = datetime.fromtimestamp(tokens.expires_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        state = f"expires {expiry} ({left / 3600:.1f} h)" if left > 0 else f"expired {expiry} (renewed on next use)"
        lines.append(f"  {who}: {kind}, {state}, scopes: {' '.join(tokens.scopes) or '?'}")
        if tokens.scopes:
            lines.append(f"    {coverage(tokens.scopes)}")
    return "\n".join(lines)


def coverage(scopes: Sequence[str]) -> str:
    """Which resources the granted scopes let a run read, and what the others would need."""
    granted = set(scopes)
    needs = {name: scope_of(name) for name in RESOURCE_NAMES if scope_of(name)}
    missing = {name: scope for name, scope in needs.items() if scope not in granted}
    covered = [name for name in needs if name not in missing]
    text = f"covers: {', '.join(covered) or 'nothing'}"
    if missing:
        text += "; not covered (skipped by runs): " + ", ".join(f"{name} ({scope})" for name, scope in missing.items())
    return text


def wait_for_code(port: int, timeout_s: float) -> str:
    """Serve one redirect on 127.0.0.1 and return its `code`; bounded by `timeout_s`."""
    received: dict[str, str] = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            params = parse_qs(urlparse(self.path).query)
            code = (params.get("code") or [""])[0]
            self.send_response(200 if code else 400)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            message = "Authorised: you can close this tab." if code else "No code in the redirect."
            self.wfile.write(message.encode())
            if code:
                received["code"] = code
                done.set()

        def log_message(self, format: str, *args: object) -> None:  # keep codes out of the terminal
            return

    server = HTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 1.0
    deadline = time.monotonic() + timeout_s
    try:
        while not done.is_set() and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if "code" not in received:
        raise AuthError(f"no redirect arrived within {timeout_s:.0f} s; rerun, or pass --code")
    return received["code"]
