"""`highlevel-sync`: the command line. It owns the terminal; the library only logs.

Every failure ends as one line on stderr naming the problem and the fix, and a non-zero exit
code; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from sources.highlevel.config import load_config, parse_date
from sources.highlevel.errors import HighLevelError

from . import auth_cli
from .progress import SyncProgress
from .report import format_summary, summary_json
from .runlock import RunInProgress
from .sync import SyncRequest, run_sync

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BUSY = 75  # EX_TEMPFAIL: another run of the pipeline is in progress (--no-wait); try again later


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def milliseconds(value: str) -> float:
    """A delay in milliseconds: a finite number >= 0 (argparse turns the ValueError into a usage error)."""
    number = float(value)
    if not 0.0 <= number < float("inf"):
        raise ValueError(value)
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="highlevel-sync", description="Sync HighLevel CRM data into a warehouse.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="one sync (incremental after the first)")
    run.add_argument("--resources", type=_csv, help="comma-separated subset, e.g. contacts,users")
    run.add_argument("--locations", type=_csv, help="comma-separated location ids (default: from config)")
    run.add_argument("--destination", help="dlt destination name (default duckdb)")
    run.add_argument("--dataset-name", default="highlevel")
    run.add_argument("--pipeline-name", default="highlevel")
    run.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default ~/.dlt/pipelines)")
    run.add_argument("--full-refresh", action="store_true", help="ignore stored cursors and re-read everything")
    run.add_argument("--start-date", help="ISO date: read changes from here (first run / backfill)")
    run.add_argument("--end-date", help="ISO date: end of a backfill window (does not move cursors)")
    run.add_argument("--reconcile", action="store_true",
                     help="also re-list every contact, opportunity and appointment; delete what HighLevel lost")
    run.add_argument("--json", action="store_true",
                     help="print the summary as one JSON object on stdout (progress stays on stderr)")
    run.add_argument("--no-wait", action="store_true",
                     help="if another run of this pipeline is in progress, exit 75 at once instead of waiting")

    demo = sub.add_parser("demo", help="sync the bundled sandbox into ./highlevel_demo.duckdb, twice")
    demo.add_argument("--path", default="highlevel_demo.duckdb")
    demo.add_argument("--contacts", type=int, default=12_500, help="contacts in the biggest demo location")

    status = sub.add_parser("status", help="per location and resource of the dataset, whichever shard synced it: "
                            "cursor, last success, rows")
    status.add_argument("--destination", help="dlt destination name (default duckdb)")
    status.add_argument("--dataset-name", default="highlevel")
    status.add_argument("--pipeline-name", default="highlevel")
    status.add_argument("--pipelines-dir")
    status.add_argument("--json", action="store_true",
                        help="every location of the dataset once (pipeline, shard, per-resource state) as JSON")

    auth_cli.add_parser(sub)

    hooks = sub.add_parser("webhooks", help="the webhook receiver")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    hook_serve = hooks_sub.add_parser("serve", help="receive HighLevel webhooks and trigger incremental runs")
    hook_serve.add_argument("--host", default="127.0.0.1")
    hook_serve.add_argument("--port", type=int, default=8080)
    hook_serve.add_argument("--airflow-url", help="trigger an Airflow DAG run instead of syncing in-process")
    hook_serve.add_argument("--airflow-dag", default="highlevel_sync")
    hook_serve.add_argument("--airflow-api", choices=["auto", "1", "2"], default=os.environ.get("AIRFLOW_API_VERSION",
                            "auto"), help="Airflow REST API: 2 (Airflow 3), 1 (Airflow 2), auto: ask the server")

    sandbox = sub.add_parser("sandbox", help="the local HighLevel API")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_sub.add_parser("serve", help="serve the sandbox until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--contacts", type=_csv, help="contacts per location, e.g. 12500,300,40")
    serve.add_argument("--index-lag", type=float, help="max search-index lag in seconds")
    serve.add_argument("--opportunities", type=_csv, help="opportunities per location")
    serve.add_argument("--conversations", type=_csv, help="conversations per location")
    serve.add_argument("--messages-per-conversation", type=int)
    serve.add_argument("--calendars", type=int, help="calendars per location")
    serve.add_argument("--appointments-per-calendar", type=int)
    serve.add_argument("--no-rate-limit", action="store_true")
    serve.add_argument("--latency-ms", type=milliseconds, help="fixed delay per API answer, as a distant HighLevel "
                       "adds (the benchmarks use 250)")
    serve.add_argument("--latency-per-record-ms", type=milliseconds, help="extra delay per record in an answer "
                       "(the benchmarks use 0.5: a 500-contact page waits 250 + 250 ms)")
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each record, not as it was at setup.

    The live progress display swaps sys.stderr for a proxy that prints above the display; a
    handler holding the original stream would draw through the table instead.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _DropBelow(logging.Filter):
    """Drops records under a level, whatever level their logger is set to."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def configure_logging(debug: bool, *, quiet: bool = False) -> None:
    """Route every log record to stderr in one format; `quiet` (run, demo) leaves the terminal to progress.

    Levels: --debug shows everything; otherwise INFO, or WARNING when quiet. dlt's internal
    warnings (all-null columns, schema hashes, package notices) are kept out unless --debug: they
    describe dlt's bookkeeping, not the user's data, and the run summary reports what matters.
    Safe to call again (tests run `main` many times in one process).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    # httpx logs every URL at INFO (tokens never, but noise always); uvicorn logs every request
    for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)

    # dlt logs through its own "dlt" logger: when its runtime starts (the first dlt.pipeline()) dlt
    # gives that logger a stderr handler of its own, `propagate = False` and the level of
    # `runtime.log_level` (WARNING by default and in .dlt/config.toml), so neither our root level nor
    # a setLevel made before then holds. A filter on the logger survives dlt's (re)initialisation.
    # The config value is for spawned pool workers (dlt spawns rather than forks off the main thread
    # or under an orchestrator): they set up dlt's logging afresh from the resolved runtime config.
    dlt_logger = logging.getLogger("dlt")
    for old in [f for f in dlt_logger.filters if isinstance(f, _DropBelow)]:
        dlt_logger.removeFilter(old)
    if not debug:
        dlt_logger.addFilter(_DropBelow(logging.ERROR))
        os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    # dlt's deprecation notices use the warnings module: log them, so the same levels apply
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if debug else logging.ERROR)


def cmd_run(args: argparse.Namespace) -> int:
    request = SyncRequest(
        resources=args.resources,
        locations=args.locations,
        destination=args.destination,
        dataset_name=args.dataset_name,
        pipeline_name=args.pipeline_name,
        pipelines_dir=args.pipelines_dir,
        full_refresh=args.full_refresh,
        start_date=parse_date("--start-date", args.start_date),
        end_date=parse_date("--end-date", args.end_date),
        reconcile=args.reconcile,
        wait=not args.no_wait,
    )
    config = load_config()
    # --debug logs a lot and dlt writes around any live display: plain progress lines then
    with SyncProgress(live=False if args.debug else None) as progress:
        result = run_sync(request, config=config, progress=progress)
    if args.json:
        print(json.dumps(summary_json(result)))
    else:
        print(format_summary(result))
    for failed in (loc for loc in result.locations if not loc.ok):
        print(f"error: {failed.error}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from .status import collect_status, format_status, status_json
    from .sync import make_pipeline

    pipeline = make_pipeline(SyncRequest(destination=args.destination, dataset_name=args.dataset_name,
                                         pipeline_name=args.pipeline_name, pipelines_dir=args.pipelines_dir))
    from .installs import InstallRegistry

    rows, uninstalled = collect_status(pipeline), InstallRegistry(load_config().token_store).uninstalled()
    print(json.dumps(status_json(rows, uninstalled)) if args.json else format_status(rows, uninstalled))
    return EXIT_OK


def cmd_webhooks(args: argparse.Namespace) -> int:
    from .webhook_runs import serve_webhooks

    return serve_webhooks(args.host, args.port, args.airflow_url, args.airflow_dag, args.airflow_api)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.path, args.contacts, live=False if args.debug else None)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from highlevel_sync.sandbox import SandboxConfig, serve

    overrides: dict[str, Any] = {"seed": args.seed}
    if args.contacts:
        overrides["contacts_per_location"] = tuple(int(n) for n in args.contacts)
    if args.index_lag is not None:
        overrides["index_lag_s"] = args.index_lag
    for name, key in (("opportunities", "opportunities_per_location"), ("conversations", "conversations_per_location")):
        if getattr(args, name):
            overrides[key] = tuple(int(n) for n in getattr(args, name))
    for name, key in (("messages_per_conversation", "messages_per_conversation"),
                      ("calendars", "calendars_per_location"),
                      ("appointments_per_calendar", "appointments_per_calendar")):
        if getattr(args, name) is not None:
            overrides[key] = getattr(args, name)
    if args.no_rate_limit:
        overrides.update(rate_limit_max=None, daily_quota=None)
    for name in ("latency_ms", "latency_per_record_ms"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    print(f"HighLevel sandbox on http://{args.host}:{args.port} (GET /__sandbox__/info for tokens); Ctrl-C stops")
    serve(SandboxConfig(**overrides), host=args.host, port=args.port)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.debug, quiet=args.command in ("run", "demo"))
    commands = {"run": cmd_run, "demo": cmd_demo, "sandbox": cmd_sandbox, "auth": auth_cli.run,
                "status": cmd_status, "webhooks": cmd_webhooks}
    try:
        return commands[args.command](args)
    except RunInProgress as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except HighLevelError as exc:
        if args.debug:
            logging.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if type(exc).__name__ == "ConfigError" else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: data and cursors of finished locations are kept; rerun to continue", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug or os.environ.get("HIGHLEVEL_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(rerun with --debug for details)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
