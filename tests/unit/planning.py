"""Helpers to build configs and deals for planner tests."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.models import Contact, Deal, Owner
from worker.settings import Config, load_config
from worker.settings.loader import default_config_dir

BASE = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US, weekend: [sat, sun]}
  reminder_time: "09:00"
  lead_time: 7d
  grace: 7d
  horizon: 3y
connections:
  - name: crm
    kind: hubspot
    auth: {access_token: "${T:-pat-x}"}
    fallback_owner: "FALLBACK"
"""


def config_from(tmp_path: Path, cadences_yaml: str | None = None, extra: str = "") -> Config:
    text = BASE + extra + (cadences_yaml or "")
    path = tmp_path / "winback.yaml"
    path.write_text(text)
    return load_config(path, env={})


def default_config() -> Config:
    return load_config(default_config_dir() / "winback.yaml", require_env=False)


def deal(closed_at: date | datetime | None = date(2027, 11, 12), **changes: Any) -> Deal:
    owner = changes.pop("owner", Owner(id="U1", timezone="America/New_York", country="US"))
    data: dict[str, Any] = {
        "id": "D1", "name": "Acme platform", "account_id": "A1", "account_name": "Acme",
        "closed_at": closed_at, "amount": 40000.0, "loss_reason": "Lost to competitor",
        "competitor": "Globex", "owner": owner,
        "contacts": (Contact(id="K1", name="Ann"), Contact(id="K2", name="Ben")),
    }
    data.update(changes)
    return Deal(**data)


def examples(full: int) -> int:
    """Hypothesis examples for a property test: `full` under --long, a third of it (at least
    20) in make test, which must stay under 10 minutes."""
    return full if os.environ.get("WINBACK_TEST_LONG") else max(20, full // 3)
