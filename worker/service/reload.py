"""SIGHUP in `winback run`: read the configuration file again, validate it, and hand the new
rules to each connection's next tick; or refuse it and keep the rules in force.

What a reload can change is what the planner and the stop rules read: `defaults`, `cadences`,
`stop`, and each connection's `owners`, `fallback_owner` and `max_tasks_per_owner_per_day`.
Anything else (connections added, removed or re-pointed, credentials, field names, `service`)
is wired into the CRM clients,
the scheduler and the HTTP port at start: a file that changes it is refused with what changed,
so the process never runs half old and half new; restart to apply it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from worker.cadence.engine import Planner
from worker.settings import Config, ConfigErrors, load_config
from worker.settings.connections import HubSpotConnection, SalesforceConnection
from worker.sync.context import SyncContext

RULE_SECTIONS = ("defaults", "cadences", "stop")
CONNECTION_RULES = frozenset({"owners", "fallback_owner", "max_tasks_per_owner_per_day"})


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The settings that differ between `old` and `new` and need a restart to apply."""
    changes = []
    if old.service != new.service:
        changes.append("service")
    old_names = [c.name for c in old.connections]
    new_names = [c.name for c in new.connections]
    if old_names != new_names:
        changes.append(f"connections (names {', '.join(old_names) or 'none'} -> "
                       f"{', '.join(new_names) or 'none'})")
        return changes
    for before, after in zip(old.connections, new.connections, strict=True):
        a, b = _wiring(before), _wiring(after)
        changes += [f"connections[{before.name}].{key}" for key in sorted(a)
                    if a[key] != b.get(key)]
    return changes


def _wiring(connection: SalesforceConnection | HubSpotConnection) -> dict[str, Any]:
    dumped = connection.model_dump()
    return {k: v for k, v in dumped.items() if k not in CONNECTION_RULES}


def changed_rules(old: Config, new: Config) -> list[str]:
    """The reloadable settings that differ (for the `config.reloaded` event)."""
    changed = [s for s in RULE_SECTIONS if getattr(old, s) != getattr(new, s)]
    for before, after in zip(old.connections, new.connections, strict=False):
        changed += [f"connections[{before.name}].{key}" for key in sorted(CONNECTION_RULES)
                    if getattr(before, key) != getattr(after, key)]
    return changed


class Reloader:
    """Holds a validated new configuration until each connection's next tick takes it."""

    def __init__(self, config: Config, path: Path, log: Any) -> None:
        self.config = config
        self.path = path
        self.log = log
        self._lock = threading.Lock()
        self._serial = threading.Lock()  # two quick SIGHUPs: one reload after the other
        self._pending: dict[str, Config] = {}

    def reload(self) -> bool:
        """Read and check the file; True when it was accepted (applied at the next ticks)."""
        with self._serial:
            return self._reload()

    def _reload(self) -> bool:
        try:
            new = load_config(self.path)
        except ConfigErrors as exc:
            self.log.error("config.reload_refused", file=str(self.path),
                           reason="the file has errors; the rules in force are kept",
                           errors=[str(e) for e in exc.errors])
            return False
        except OSError as exc:
            self.log.error("config.reload_refused", file=str(self.path),
                           reason=f"cannot read the file: {exc.strerror}")
            return False
        restart = restart_only_changes(self.config, new)
        if restart:
            self.log.error("config.reload_refused", file=str(self.path),
                           reason="these settings only change on a restart; the rules in "
                                  "force are kept (restart winback run to apply them)",
                           changed=restart)
            return False
        changed = changed_rules(self.config, new)
        with self._lock:
            self.config = new
            self._pending = {c.name: new for c in new.connections}
        self.log.info("config.reloaded", file=str(self.path), changed=changed,
                      applies="at each connection's next tick")
        return True

    def apply(self, ctx: SyncContext) -> None:
        """Called before a tick: give `ctx` the newest accepted rules, if it has not yet."""
        with self._lock:
            new = self._pending.pop(ctx.name, None)
        if new is None:
            return
        settings = new.connection(ctx.name)
        assert settings is not None  # reload() refuses a file that drops a connection
        ctx.config = new
        ctx.settings = settings
        ctx.planner = Planner(new, ctx.name)
