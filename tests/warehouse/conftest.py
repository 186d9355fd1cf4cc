"""A real, throwaway PostgreSQL server for warehouse tests (initdb in a temp dir, loopback only).

The server binaries come from the OS package (`apt-get install postgresql`; .ci/run does that).
Postgres refuses to run as root, so when the tests run as root the cluster belongs to the
`postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="hl_pg_"))
    data = root / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(_as_owner([initdb, "-D", str(data), "-U", "loader", "--auth=trust", "-E", "UTF8"]), check=True,
                   stdout=subprocess.DEVNULL)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off"
    subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    try:
        dsn = f"postgresql://loader:unused@127.0.0.1:{port}/postgres"  # trust auth; dlt wants a password
        deadline = time.monotonic() + 20
        import psycopg2

        while True:
            try:
                psycopg2.connect(dsn).close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield dsn
    finally:
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), check=False,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
