"""The `winback` entry point: imports every command module (importing one registers its commands
on the app of worker/cli/app.py) and runs the app. Exit codes: 0 success, 2 bad config or input,
1 a failed run."""

from __future__ import annotations

import os
import sys

# Importing a command module registers its commands; `--help` lists them in this order.
from worker.cli import plan  # isort: split

from worker.cli import commands, owners
from worker.cli.app import app, err

__all__ = ["app", "commands", "main", "owners", "plan"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("WINBACK_DEBUG"):
            raise
        err.print(f"winback: {type(exc).__name__}: {exc}", markup=False)
        err.print("(set WINBACK_DEBUG=1 to see the traceback)", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
