"""An emulator in its own process, and its admin API, for the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import requests


class EmulatorProcess:
    def __init__(self, crm: str, **options: Any) -> None:
        argv = [sys.executable, "-m", "sandbox", "--crm", crm]
        for key, value in options.items():
            argv += ["--option", f"{key}={value}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {crm} emulator did not start")
        info = json.loads(line)
        self.crm = crm
        self.url: str = info["url"]
        self.ca_path: str | None = info.get("ca_path")
        self.session = requests.Session()
        self.session.trust_env = False
        if self.ca_path:
            self.session.verify = self.ca_path

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 900) -> Any:
        response = self.session.request(method, f"{self.url}/__sandbox/{path}", json=body,
                                        timeout=timeout)
        response.raise_for_status()
        return response.json() if response.content else None

    def calls(self) -> dict[str, int]:
        return dict(self.admin("GET", "calls")["calls"])

    def reset_calls(self) -> None:
        self.admin("POST", "calls/reset")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
