"""Where the Node client tests find node and the pinned clients (tests/node/), or why not."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.ci import skip_or_fail

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
PACKAGES = ("jsforce", "@hubspot/api-client")


def node_binary(node_dir: Path = NODE_DIR) -> str:
    """The node executable on PATH, with the clients installed under `node_dir`; otherwise
    skip (fail under CI=true) saying what is missing and how to get it."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed (no `node` on PATH): install Node.js and npm "
                     "(Debian: apt-get install nodejs npm), then run make test")
    assert node is not None
    missing = [p for p in PACKAGES if not (node_dir / "node_modules" / p / "package.json").exists()]
    if missing:
        skip_or_fail(f"the Node clients {', '.join(missing)} are not installed in "
                     f"{node_dir / 'node_modules'}: run make test (or npm ci --prefix tests/node)")
    return node
