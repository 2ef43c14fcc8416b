"""Injection: quotes, backslashes, SOQL and filter syntax, template syntax and unicode in CRM
data and in the configuration never change a query, a template or a key; template escapes
are refused when the configuration loads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.runner import Sandbox, start_sandbox
from worker.service.wiring import build_service
from worker.settings import load_config
from worker.settings.templates import TemplateProblem, check
from worker.sync.tick import run_tick

NASTY = st.sampled_from([
    "O'Brien", 'say "hi"', "back\\slash", "\\'", "' OR Name != '", "%", "_", "a%_b",
    "{{ 7*7 }}", "{% raw %}", "${HOME}", "$$", "\x00".replace("\x00", ""), "🚀", "中文",
    "ñ ü é", "\\n", "<b>&amp;</b>", "; DROP TABLE task; --", "NOT_IN", "hs_object_id GT 0",
    "a@ref", "]", "[wb:", "\t tab",
])
TEXT = st.lists(NASTY, min_size=1, max_size=4).map(" ".join)

CONFIG = """\
version: 1
defaults: {{timezone: America/New_York}}
connections:
  - name: sf
    kind: salesforce
    login_url: ${{SF_LOGIN_URL}}
    ca_bundle: ${{SF_CA_BUNDLE}}
    auth: {{username: "${{SF_USERNAME}}", password: "${{SF_PASSWORD}}",
            security_token: "${{SF_TOKEN}}"}}
    fields: {{loss_reason: Loss_Reason__c, competitor: Competitor__c}}
    task_key_field: Winback_Key__c
  - name: hs
    kind: hubspot
    base_url: ${{HUBSPOT_BASE_URL}}
    auth: {{access_token: "${{HUBSPOT_TOKEN}}"}}
    fields: {{loss_reason: closed_lost_reason, competitor: competitor}}
cadences:
  - id: tricky
    when: {{loss_reason: {{in: [{reason}]}}}}
    steps:
      - {{id: hello, at: 0d, subject: "Call {{{{ deal.competitor }}}} re {{{{ deal.name }}}}"}}
"""


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    sandbox = start_sandbox(seed=2, hubspot_options={"burst": 100_000,
                                                     "search_per_second": 1000})
    yield sandbox
    sandbox.stop()


def _yaml_string(text: str) -> str:
    """A double-quoted YAML scalar; `$` doubled because `${...}` reads the environment."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return '"' + escaped.replace("$", "$$") + '"'


def _seed(box: Sandbox, name: str, reason: str, competitor: str) -> None:
    closed = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    box.admin("salesforce", "POST", "reset")  # a fixture seed adds; start from nothing
    box.admin("salesforce", "POST", "seed", {"records": {
        "User": [{"ref": "u", "FirstName": "A", "LastName": "Rep", "Email": "a@x.example",
                  "Username": "winback@sandbox.example", "IsActive": True}],
        "Account": [{"ref": "a", "Name": name[:200]}],
        "Opportunity": [{"ref": "o", "Name": name[:120], "StageName": "Closed Lost",
                         "CloseDate": closed, "AccountId": "@a", "OwnerId": "@u",
                         "Loss_Reason__c": reason, "Competitor__c": competitor}]}})
    box.admin("hubspot", "POST", "seed", {"objects": {
        "owners": [{"ref": "o", "email": "a@x.example"}],
        "companies": [{"ref": "c", "properties": {"name": name}}],
        "deals": [{"ref": "d", "properties": {
            "dealname": name, "dealstage": "closedlost", "pipeline": "default",
            "closedate": f"{closed}T12:00:00.000Z", "hubspot_owner_id": "@o",
            "closed_lost_reason": reason, "competitor": competitor},
            "associations": {"companies": ["@c"]}}]}})


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=TEXT, reason=TEXT, competitor=TEXT)
def test_hostile_crm_values_are_data_not_code(box: Sandbox, tmp_path: Path, name: str,
                                              reason: str, competitor: str) -> None:
    """Whatever a rep typed: the deal matches by value, its subject shows the text verbatim,
    and each CRM gets exactly one task."""
    _seed(box, name, reason, competitor)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    path = work / "winback.yaml"
    path.write_text(CONFIG.format(reason=_yaml_string(reason)))
    saved = dict(os.environ)
    os.environ.update(box.environment())
    os.environ["WINBACK_DATABASE_URL"] = f"sqlite:///{work / 'ledger.db'}"
    try:
        service = build_service(load_config(path), path)
        try:
            results = {n: run_tick(c, ignore_schedule=True) for n, c in service.contexts.items()}
        finally:
            service.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for result in results.values():
        assert result.result == "ok", result.error
        assert result.counts.enrolled == 1 and result.counts.tasks_written == 1
    sf = box.tasks("salesforce")
    hs = box.tasks("hubspot")
    expected = " ".join(f"Call {competitor} re {name}".split())
    assert [t["Subject"] for t in sf] == [" ".join(f"Call {competitor} re {name[:120]}"
                                                   .split())[:255]]
    assert [t["properties"]["hs_task_subject"] for t in hs] == [expected]


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}", "{{ deal.__class__.__mro__ }}", "{{ deal['__init__'] }}",
    "{{ cycler.__init__.__globals__ }}", "{{ self._TemplateReference__context }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ lipsum.__globals__['os'] }}", "{{ namespace.__init__ }}", "{{ config }}",
    "{{ request }}", "{{ deal.name.format }}",
])
def test_template_escapes_are_refused_when_the_config_loads(template: str) -> None:
    """Known sandbox escapes never reach rendering."""
    with pytest.raises(TemplateProblem):
        check(template, with_contact=False)
        _render_probe(template)


def _render_probe(template: str) -> Any:
    """If a template passed the check, it must at least not expose Python internals."""
    from worker.settings.templates import render

    out = render(template, {"deal": {"name": "x"}, "owner": {}, "contact": None, "step": None})
    if "class" in out or "function" in out or "module" in out:
        return out
    raise TemplateProblem("rendered without exposing internals")
