"""Wire inbox, processor, debouncer and app together, and serve them with uvicorn.

`Receiver` is the assembled receiver for embedding (tests, a sandbox); `serve` is the blocking entry
point the CLI's `webhooks serve` calls. The processor and debouncer share one clock, because dirty
marks written by one are compared against the other's "now".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import uvicorn

from .app import create_app
from .config import WebhookConfig
from .debounce import Debouncer, Trigger
from .inbox import Inbox
from .processor import InstallHook, Processor, Reachable, UninstallHook

logger = logging.getLogger("highlevel.webhooks.server")


def log_only_trigger(location_id: str, resources: set[str]) -> None:
    """Stand-in when no trigger is configured: the events are kept, but nothing is synced."""
    logger.warning("no sync trigger configured: location %s has changes in %s", location_id,
                   ", ".join(sorted(resources)))


class Receiver:
    """The whole receiver; `start()` runs the background threads, `stop()` ends them and closes the inbox."""

    def __init__(
        self,
        config: WebhookConfig,
        trigger: Trigger | None = None,
        *,
        on_install: InstallHook | None = None,
        on_uninstall: UninstallHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_concurrent_runs: int = 1,
        reachable: Reachable | None = None,
    ) -> None:
        if trigger is None:
            logger.warning("webhook receiver has no sync trigger: deliveries are recorded but start no sync")
        self.config = config
        self.inbox = Inbox(config.inbox_path)
        self.processor = Processor(self.inbox, on_install=on_install, on_uninstall=on_uninstall, clock=clock,
                                   reachable=reachable, retention=config.retention)
        self.debouncer = Debouncer(self.inbox, trigger or log_only_trigger, config.quiet_s, config.max_delay_s,
                                   clock, max_concurrent=max_concurrent_runs, max_backoff_s=config.max_backoff_s)
        self.app = create_app(config, self.inbox, self.processor, debouncer=self.debouncer)

    def start(self) -> Receiver:
        self.processor.start()
        self.debouncer.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.processor.stop(timeout)
        self.debouncer.stop(timeout)
        self.inbox.close()


def serve(
    config: WebhookConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    trigger: Trigger | None = None,
    *,
    on_install: InstallHook | None = None,
    on_uninstall: UninstallHook | None = None,
    max_concurrent_runs: int = 1,
    log_level: str = "info",
    reachable: Reachable | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (blocking). Bind to loopback unless a proxy terminates TLS in front."""
    receiver = Receiver(config, trigger, on_install=on_install, on_uninstall=on_uninstall,
                        max_concurrent_runs=max_concurrent_runs, reachable=reachable).start()
    logger.info("webhook receiver listening on http://%s:%d/webhooks/highlevel (inbox %s)", host, port,
                config.inbox_path)
    try:
        uvicorn.run(receiver.app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off",
                    server_header=False)
    finally:
        receiver.stop()
