"""`python -m sandbox`: serve one or both emulators in their own process (benchmarks use this
to keep the emulator off the measured process). Prints one JSON line with the URLs and the CA
path once serving, then runs until SIGTERM/SIGINT.

    python -m sandbox --crm hubspot --port 0 --option deals=10000 --option burst=100

The HubSpot emulator accepts only its registered static tokens: the published sandbox token,
or those of `--option tokens=pat-a,pat-b` (comma-separated).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--option", action="append", default=[],
                        help="emulator option NAME=VALUE (repeatable)")
    parser.add_argument("--ca-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    options = {k: _value(v) for k, v in (o.split("=", 1) for o in args.option)}
    if "tokens" in options:  # a list option: comma-separated
        options["tokens"] = [t for t in str(options["tokens"]).split(",") if t]
    info: dict[str, Any] = {"crm": args.crm}
    if args.crm == "salesforce":
        from sandbox.salesforce import start_salesforce

        ca_dir = args.ca_dir or Path(tempfile.mkdtemp(prefix="winback-sf-"))
        server, ca, _ = start_salesforce(args.port, ca_dir=ca_dir, seed=args.seed, **options)
        info["ca_path"] = str(ca.ca_path)
    else:
        from sandbox.hubspot import start_hubspot

        server, _ = start_hubspot(args.port, seed=args.seed, **options)
    info["url"] = server.url
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
