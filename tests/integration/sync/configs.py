"""The rule file the activity sync tests share: the defaults and stop rules, then a cadence
`act` with the steps a test gives (its connections follow, written by the test)."""

from __future__ import annotations

HEADER = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US}
  lead_time: 7d
  grace: 7d
  horizon: 1y
stop: {on_new_deal_for_account: false, notify_owner: false}
cadences:
  - id: act
    steps:
"""


def activity_config(*steps: str) -> str:
    """HEADER, these step lines (flow mappings), and the `connections:` key."""
    return HEADER + "".join(f"      - {step}\n" for step in steps) + "connections:\n"
