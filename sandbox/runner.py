"""Both emulators at once: what `winback sandbox`, the demo and the benchmarks start."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from sandbox.hubspot import HubSpotEmulator, start_hubspot
from sandbox.hubspot.auth import SANDBOX_TOKEN
from sandbox.keys import SigningKey, make_signing_key
from sandbox.salesforce import SalesforceEmulator, start_salesforce
from sandbox.server import EmulatorServer
from sandbox.tls import TestCA

SF_USERNAME = "winback@sandbox.example"
SF_PASSWORD = "sandbox-password"  # noqa: S105 - the emulator's published test login
SF_TOKEN = "SANDBOXTOKEN"  # noqa: S105
HUBSPOT_TOKEN = SANDBOX_TOKEN  # the HubSpot emulator accepts it (and only registered tokens)


@dataclass
class Sandbox:
    salesforce: EmulatorServer
    salesforce_emulator: SalesforceEmulator
    hubspot: EmulatorServer
    hubspot_emulator: HubSpotEmulator
    ca: TestCA
    signing_key: SigningKey  # its certificate is registered for the app SF_CLIENT_ID names
    owned_dir: Path | None = None  # a temporary directory start_sandbox made; stop() removes it

    @property
    def salesforce_url(self) -> str:
        return self.salesforce.url

    @property
    def hubspot_url(self) -> str:
        return self.hubspot.url

    def admin(self, crm: str, method: str, path: str, body: Any = None) -> Any:
        """Call an admin route of one emulator (`crm` is salesforce or hubspot)."""
        base = self.salesforce_url if crm == "salesforce" else self.hubspot_url
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca.ca_path)
        response = session.request(method, f"{base}/__sandbox/{path.lstrip('/')}", json=body,
                                   timeout=120)
        response.raise_for_status()
        return response.json() if response.content else None

    def tasks(self, crm: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every task one CRM holds, in its own shape (Salesforce fields / HubSpot object)."""
        found = self.admin(crm, "GET", "tasks")
        if isinstance(found, dict):
            found = found.get("records", found.get("tasks", found.get("results", [])))
        items = list(found or [])
        if include_deleted:
            return items
        return [t for t in items if not t.get("IsDeleted") and not t.get("archived")]

    def active_owners(self) -> tuple[str, str]:
        """An active owner in each CRM (Salesforce user id, HubSpot owner id): fallback owners."""
        users = self.admin("salesforce", "GET", "records/User")
        users = users.get("records", users) if isinstance(users, dict) else users
        owners = self.admin("hubspot", "GET", "objects/owners")
        owners = owners.get("results", owners) if isinstance(owners, dict) else owners
        return (next(str(u["Id"]) for u in users if u.get("IsActive")),
                next(str(o["id"]) for o in owners if not o.get("archived")))

    def seed(self, deals: int, seed: int, **kw: Any) -> dict[str, Any]:
        body = {"generate": {"deals": deals, "seed": seed, **kw}}
        return {"salesforce": self.admin("salesforce", "POST", "seed", body),
                "hubspot": self.admin("hubspot", "POST", "seed", body)}

    def environment(self) -> dict[str, str]:
        """The variables config/winback.yaml reads, pointed at this sandbox."""
        options = self.salesforce_emulator.options
        return {
            "SF_LOGIN_URL": self.salesforce_url, "SF_CA_BUNDLE": str(self.ca.ca_path),
            "SF_USERNAME": SF_USERNAME, "SF_CLIENT_ID": options.consumer_key,
            "SF_PRIVATE_KEY_FILE": str(self.signing_key.key_path),
            "SF_CLIENT_SECRET": options.consumer_secret,
            "SF_PASSWORD": SF_PASSWORD, "SF_TOKEN": SF_TOKEN,
            "HUBSPOT_BASE_URL": self.hubspot_url, "HUBSPOT_TOKEN": HUBSPOT_TOKEN,
        }

    def stop(self) -> None:
        """Stop both emulators and remove the temporary directory the sandbox made (its CA)."""
        try:
            self.salesforce.stop()
            self.hubspot.stop()
        finally:
            if self.owned_dir is not None:
                shutil.rmtree(self.owned_dir, ignore_errors=True)


def start_sandbox(*, salesforce_port: int = 0, hubspot_port: int = 0, seed: int = 0,
                  ca_dir: Path | None = None, salesforce_options: dict[str, Any] | None = None,
                  hubspot_options: dict[str, Any] | None = None) -> Sandbox:
    """Both emulators on 127.0.0.1. The CA goes to `ca_dir`, or to a temporary directory that
    `Sandbox.stop()` removes."""
    owned: Path | None = None
    if ca_dir is None:
        ca_dir = owned = Path(tempfile.mkdtemp(prefix="winback-sandbox-"))
    key = make_signing_key(ca_dir)  # a fresh key pair and certificate at every start
    try:
        sf_server, ca, sf = start_salesforce(salesforce_port, ca_dir=ca_dir, seed=seed,
                                             **{"jwt_public_key": key.certificate_pem,
                                                **(salesforce_options or {})})
        try:
            hs_server, hs = start_hubspot(hubspot_port, seed=seed, **(hubspot_options or {}))
        except Exception:
            sf_server.stop()
            raise
    except BaseException:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise
    return Sandbox(sf_server, sf, hs_server, hs, ca, key, owned)


SALESFORCE_AUTH = {
    "jwt": 'flow: jwt, username: "{username}", client_id: "${{SF_CLIENT_ID}}",\n'
           '            private_key_file: "${{SF_PRIVATE_KEY_FILE}}"',
    "client_credentials": 'flow: client_credentials, client_id: "${{SF_CLIENT_ID}}",\n'
                          '            client_secret: "${{SF_CLIENT_SECRET}}"',
    "password": 'flow: password, username: "{username}", password: "${{SF_PASSWORD}}",\n'
                '            security_token: "${{SF_TOKEN}}", client_id: "${{SF_CLIENT_ID}}",\n'
                '            client_secret: "${{SF_CLIENT_SECRET}}"',
    "soap": 'flow: soap, username: "{username}", password: "${{SF_PASSWORD}}",\n'
            '            security_token: "${{SF_TOKEN}}"',
}


def salesforce_connection(name: str, *, fallback: str = "", username: str = "${SF_USERNAME}",
                          key_field: str = "Winback_Key__c", extra: str = "",
                          flow: str = "jwt", activity_fields: bool = False) -> str:
    """A `connections:` entry of a winback configuration for the Salesforce emulator, reading
    its endpoints and credentials from the variables `Sandbox.environment()` sets; `flow` is
    the login (jwt, client_credentials, or the legacy password / soap); `activity_fields`
    adds the emulator's opt-out and pause fields (`fields.opt_out`, `fields.pause_until`)."""
    more = (",\n              opt_out: Winback_Opt_Out__c, pause_until: Winback_Pause_Until__c"
            if activity_fields else "")
    auth = SALESFORCE_AUTH[flow].format(username=username)
    return (f"  - name: {name}\n    kind: salesforce\n    login_url: ${{SF_LOGIN_URL}}\n"
            f"    ca_bundle: ${{SF_CA_BUNDLE}}\n"
            f"    auth: {{{auth}}}\n"
            f"    fields: {{loss_reason: Loss_Reason__c, competitor: Competitor__c,\n"
            f"              contract_end: Contract_End__c{more}}}\n"
            f"    task_key_field: {key_field}\n    fallback_owner: \"{fallback}\"\n{extra}")


def hubspot_connection(name: str, *, fallback: str = "",
                       auth: str = 'access_token: "${HUBSPOT_TOKEN}"', extra: str = "",
                       activity_fields: bool = False) -> str:
    """A `connections:` entry for the HubSpot emulator (see salesforce_connection)."""
    more = (",\n              opt_out: winback_opt_out, pause_until: winback_pause_until"
            if activity_fields else "")
    return (f"  - name: {name}\n    kind: hubspot\n    base_url: ${{HUBSPOT_BASE_URL}}\n"
            f"    auth: {{{auth}}}\n"
            f"    fields: {{loss_reason: closed_lost_reason, competitor: competitor,\n"
            f"              contract_end: contract_end_date{more}}}\n"
            f"    fallback_owner: \"{fallback}\"\n{extra}")
