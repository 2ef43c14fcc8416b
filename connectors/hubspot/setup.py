"""`ensure_setup`: what winback needs in the HubSpot account, each as a check with its fix,
and the task key mode the writes use (reference §1.1, §3 "Idempotency key property")."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import HubSpotSettings, SetupCheck, SetupReport
from connectors.errors import AuthError, PermissionDenied, SetupError
from connectors.hubspot.deals import DealReader
from connectors.hubspot.failures import Rejected
from connectors.hubspot.tasks import KeyMode
from connectors.hubspot.transport import Transport

SCOPES = ("crm.objects.deals.read, crm.objects.contacts.read, crm.objects.contacts.write, "
          "crm.objects.companies.read, crm.objects.owners.read, crm.schemas.deals.read")
FIX_CREDENTIALS = ("set a valid private-app token (access_token), or OAuth client_id, "
                   "client_secret and refresh_token, for this connection (docs/crm-setup.md)")
FIX_SCOPES = f"grant the HubSpot app these scopes: {SCOPES}"
FIX_LOST = ("in HubSpot (Settings > Objects > Deals > Pipelines) give at least one stage the "
            "closed-lost type: closed, win probability 0%")
KEY_GROUP = "taskinformation"  # HubSpot's default task property group


class Setup:
    def __init__(self, transport: Transport, settings: HubSpotSettings,
                 deals: DealReader) -> None:
        self._t = transport
        self._settings = settings
        self._deals = deals
        self._mode: KeyMode | None = None
        self._lock = threading.Lock()

    def key_mode(self) -> KeyMode:
        """The write mode, found (and the property created, when allowed) on first use."""
        with self._lock:
            if self._mode is None:
                check, mode = self._key_property(create=self._settings.create_key_property)
                if mode is None:
                    raise SetupError(f"{check.detail}; {check.fix}", connection=self._t.name,
                                     endpoint="properties.get", code="KEY_PROPERTY_MISSING")
                self._mode = mode
            return self._mode

    def ensure_setup(self, create: bool) -> SetupReport:
        checks: list[SetupCheck] = []
        try:
            stages = self._deals.stages(refresh=True)
        except AuthError as exc:
            return SetupReport([SetupCheck("credentials", False, str(exc), FIX_CREDENTIALS)],
                               key_mode="create+search")
        except PermissionDenied as exc:
            checks.append(SetupCheck("credentials", True, "the token was accepted"))
            checks.append(SetupCheck("pipelines", False, str(exc), FIX_SCOPES))
        else:
            checks.append(SetupCheck("credentials", True, "the token was accepted"))
            lost = [f"{s.label} ({s.pipeline_label})" for s in stages.values()
                    if s.is_lost and not s.archived]
            checks.append(SetupCheck(
                "closed-lost stages", bool(lost),
                "closed-lost: " + "; ".join(lost) if lost
                else "no pipeline has a closed stage with probability 0", "" if lost else FIX_LOST))
        checks.append(self._guarded("owners", self._owners))
        fields = self._settings.fields
        wanted = [(role, name) for role, name in (
            ("loss_reason", fields.loss_reason), ("competitor", fields.competitor),
            ("contract_end", fields.contract_end), ("opt_out", fields.opt_out),
            ("pause_until", fields.pause_until),
            *((f"custom.{k}", v) for k, v in fields.custom.items())) if name]
        if wanted:
            try:
                known = self._deal_properties()
            except PermissionDenied as exc:
                checks.append(SetupCheck("deal fields", False, str(exc), FIX_SCOPES))
            else:
                checks += [_field_check(role, name, known.get(name)) for role, name in wanted]
        mode: KeyMode | None = None
        try:
            key_check, mode = self._key_property(
                create=create and self._settings.create_key_property)
        except PermissionDenied as exc:
            key_check = SetupCheck("task key property", False, str(exc), FIX_SCOPES)
        checks.append(key_check)
        if mode is not None:
            with self._lock:
                self._mode = mode
        return SetupReport(checks, key_mode=mode or "create+search")

    def state(self) -> dict[str, Any] | None:
        """The key mode and the pipelines and owners read (for the setup cache)."""
        with self._lock:
            mode = self._mode
        read = self._deals.snapshot()
        if mode is None or read is None:
            return None
        return {"key_mode": mode, "key_property": self._settings.key_property, **read}

    def restore(self, state: Mapping[str, Any]) -> bool:
        mode = state.get("key_mode")
        if mode not in ("upsert", "create+search") \
                or state.get("key_property") != self._settings.key_property:
            return False
        try:
            self._deals.restore(state)
        except (KeyError, TypeError, ValueError):
            return False
        with self._lock:
            self._mode = mode
        return True

    # -- checks ----------------------------------------------------------------------------------
    def _guarded(self, name: str, check: Callable[[], SetupCheck]) -> SetupCheck:
        try:
            return check()
        except PermissionDenied as exc:
            return SetupCheck(name, False, str(exc), FIX_SCOPES)

    def _owners(self) -> SetupCheck:
        owners = self._deals.owners()  # also fills the owner cache the writes check against
        active = sum(o.active for o in owners)
        return SetupCheck("owners", bool(active),
                          f"{active} active and {len(owners) - active} inactive owners",
                          "" if active else "add at least one active user to the account")

    def _deal_properties(self) -> dict[str, Any]:
        """Every deal property by name: one call however many fields are configured."""
        api = self._t.api("crm.properties.core_api")
        data = self._t.call("properties.list", api.get_all_with_http_info, object_type="deals")
        return {str(p.name): p for p in data.results or []}

    def _key_property(self, *, create: bool) -> tuple[SetupCheck, KeyMode | None]:
        name = self._settings.key_property
        prop = self._property("tasks", name)
        created = False
        if prop is None and create:
            prop, created = self._create_key_property(name), True
        if prop is None:
            return SetupCheck(
                "task key property", False, f"the task property '{name}' does not exist",
                f"create a single-line text task property '{name}' with unique values in "
                "HubSpot (Settings > Properties > Task properties), or set "
                "create_key_property: true"), None
        if prop.has_unique_value:
            how = "created" if created else "exists"
            return SetupCheck("task key property", True,
                              f"'{name}' {how} with unique values: keyed creates (upsert)"), \
                "upsert"
        return SetupCheck(
            "task key property", True,
            f"'{name}' exists without unique values: create+search mode (uniqueness cannot "
            "be added to an existing property; a new key_property name lets winback create a "
            "unique one)"), "create+search"

    def _property(self, object_type: str, name: str) -> Any | None:
        api = self._t.api("crm.properties.core_api")
        try:
            return self._t.call("properties.get", api.get_by_name_with_http_info,
                                object_type=object_type, property_name=name)
        except Rejected as exc:
            if exc.status == 404:
                return None
            raise

    def _create_key_property(self, name: str) -> Any:
        """A unique text property in an existing group (groupName is required, reference §3)."""
        groups_api = self._t.api("crm.properties.groups_api")
        groups = self._t.call("properties.groups", groups_api.get_all_with_http_info,
                              object_type="tasks").results or []
        names = [g.name for g in groups if not getattr(g, "archived", False)]
        if not names:
            raise SetupError("HubSpot lists no task property group to create the key in",
                             connection=self._t.name, endpoint="properties.groups")
        body = {"name": name, "label": "winback key", "type": "string", "fieldType": "text",
                "groupName": KEY_GROUP if KEY_GROUP in names else names[0],
                "hasUniqueValue": True, "formField": False,
                "description": "Idempotency key of a winback follow-up task. Do not edit."}
        api = self._t.api("crm.properties.core_api")
        try:
            return self._t.call("properties.create", api.create_with_http_info,
                                object_type="tasks", property_create=body)
        except Rejected as exc:
            if exc.status == 409:  # created meanwhile (another replica)
                return self._property("tasks", name)
            raise


def _field_check(role: str, name: str, prop: Any | None) -> SetupCheck:
    if prop is None:
        return SetupCheck(
            f"deal field {name}", False,
            f"the deal property '{name}' (fields.{role}) does not exist",
            f"create the deal property '{name}' in HubSpot (Settings > Properties > Deal "
            f"properties), or correct fields.{role} in the winback config")
    wanted = WANTED_TYPES.get(role)
    if wanted is not None and prop.type not in wanted[1]:
        return SetupCheck(
            f"deal field {name}", False,
            f"the deal property '{name}' (fields.{role}) is of type {prop.type}; winback reads "
            f"{wanted[0]} from it",
            f"point fields.{role} at a deal property of type {wanted[0]}, or create one in "
            "HubSpot (Settings > Properties > Deal properties; see docs/crm-setup.md)")
    return SetupCheck(f"deal field {name}", True, f"fields.{role} reads '{prop.label}' "
                      f"({prop.type})")


# The property types the activity fields are read as (a single checkbox is type bool).
WANTED_TYPES = {"opt_out": ("bool (a single checkbox)", frozenset({"bool"})),
                "pause_until": ("date", frozenset({"date", "datetime"}))}
