"""Child-process entry for the durability test: `serve()` with test public keys on a given port.

    python -m tests.webhooks.receiver_proc --port P --inbox PATH --ed25519-key PEM --rsa-key PEM
"""

from __future__ import annotations

import argparse
import logging

from sources.highlevel.webhooks import WebhookConfig, serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inbox", required=True)
    parser.add_argument("--ed25519-key", required=True)
    parser.add_argument("--rsa-key", required=True)
    parser.add_argument("--quiet-s", type=float, default=0.2)
    parser.add_argument("--max-delay-s", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = WebhookConfig(ed25519_public_key=args.ed25519_key, rsa_public_key=args.rsa_key, inbox_path=args.inbox,
                           quiet_s=args.quiet_s, max_delay_s=args.max_delay_s)
    serve(config, host="127.0.0.1", port=args.port, trigger=lambda location_id, resources: None,
          log_level="warning")


if __name__ == "__main__":
    main()
