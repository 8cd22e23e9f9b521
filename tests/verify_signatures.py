#!/usr/bin/env python3
"""Verifies callhook's webhook signatures with the PyPI `standardwebhooks` package, as a
receiver would: independent of callhook's own code (SPEC §6).

Reads JSON lines on stdin, each {"secret", "id", "timestamp", "body", "signature"}, and prints
one line per input: `ok` when the signature verifies, `bad` when it does not (or the line is
not usable). The integration tests (tests/it/delivery.rs) run it; scripts/test installs the
package in .venv.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def verify(item):
    headers = {
        "webhook-id": item["id"],
        "webhook-timestamp": str(item["timestamp"]),
        "webhook-signature": item["signature"],
    }
    wh = Webhook(item["secret"])
    try:
        # Form bodies are not JSON: ask only for the signature check.
        wh.verify(item["body"], headers, json_parse=False)
    except TypeError:
        # Releases before `json_parse` always parse the body as JSON, after the signature
        # matched: a form body failing to parse means the signature was good.
        try:
            wh.verify(item["body"], headers)
        except json.JSONDecodeError:
            pass


def main():
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            verify(json.loads(line))
        except Exception as e:  # a verification error, or a line we cannot use
            print(f"line {n}: {type(e).__name__}: {e}", file=sys.stderr)
            print("bad", flush=True)
        else:
            print("ok", flush=True)


if __name__ == "__main__":
    main()
