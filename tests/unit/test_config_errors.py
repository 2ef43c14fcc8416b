"""Malformed configurations: each is rejected with exit 2, the right line, a clear reason and
no traceback; secrets never appear in the output."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli.main import app
from worker.settings import ConfigErrors, load_config

HEAD = """\
version: 1
connections:
  - name: crm
    kind: hubspot
    auth: {access_token: "${HS_TOKEN:-pat-x}"}
"""

STEP = "cadences:\n  - id: c\n    steps:\n      - "


def step(text: str) -> str:
    return HEAD + STEP + text + "\n"


# (case id, YAML, line of the error, words the message must contain)
CASES: list[tuple[str, str, int, str]] = [
    ("empty file", "", 1, "empty"),
    ("yaml syntax", "version: 1\nconnections: [\n", 3, "YAML syntax error"),
    ("bad indentation", "version: 1\n defaults:\n  timezone: UTC\n", 2, "YAML syntax error"),
    ("duplicate yaml key", "version: 1\nversion: 1\n", 2, "YAML syntax error"),
    ("top level list", "- version: 1\n", 1, "top level must be a mapping"),
    ("missing version", "connections: []\n", 1, "missing required key 'version'"),
    ("wrong version", "version: 2\n", 1, "expected 1"),
    ("unknown top key", HEAD + "cadense: []\n", 6, "did you mean 'cadences'"),
    ("unknown defaults key", "version: 1\ndefaults:\n  timzone: UTC\n", 3,
     "did you mean 'timezone'"),
    ("unknown time zone", "version: 1\ndefaults:\n  timezone: Mars/Olympus\n", 3,
     "unknown time zone 'Mars/Olympus'"),
    ("unknown country", "version: 1\ndefaults:\n  calendar: {country: XX}\n", 3,
     "unsupported country 'XX'"),
    ("unknown subdivision", "version: 1\ndefaults:\n  calendar: {country: US, subdivision: ZZ}\n",
     3, "unknown subdivision 'ZZ'"),
    ("bad weekday", "version: 1\ndefaults:\n  calendar: {weekend: [saturday]}\n", 3,
     "'saturday' is not one of 'mon', 'tue'"),
    ("all week is weekend", "version: 1\ndefaults:\n  calendar: {weekend: [mon, tue, wed, thu, "
     "fri, sat, sun]}\n", 3, "no day would be a working day"),
    ("bad reminder time", "version: 1\ndefaults:\n  reminder_time: \"25:00\"\n", 3, "time"),
    ("bad lead time", "version: 1\ndefaults:\n  lead_time: 7days\n", 3,
     "'7days' is not a duration"),
    ("negative grace", "version: 1\ndefaults:\n  grace: -2d\n", 3, "negative"),
    ("zero horizon", "version: 1\ndefaults:\n  horizon: 0d\n", 3, "must be more than 0d"),
    ("connection without kind", "version: 1\nconnections:\n  - name: x\n    auth: {}\n", 3,
     "missing required key 'kind'"),
    ("unknown kind", "version: 1\nconnections:\n  - name: x\n    kind: pipedrive\n", 4,
     "unknown kind"),
    ("connection name with spaces", HEAD.replace("name: crm", "name: My CRM"), 3,
     "not a valid value"),
    ("duplicate connection name", HEAD + "  - name: crm\n    kind: hubspot\n"
     "    auth: {access_token: \"${T:-x}\"}\n", 6, "duplicate name 'crm'"),
    ("literal secret", HEAD.replace('"${HS_TOKEN:-pat-x}"', "pat-na1-secret"), 5,
     "a secret must come from the environment"),
    ("missing env var", HEAD.replace("${HS_TOKEN:-pat-x}", "${WINBACK_TEST_UNSET_VAR}"), 5,
     "environment variable WINBACK_TEST_UNSET_VAR is not set"),
    ("unclosed env reference", HEAD.replace("${HS_TOKEN:-pat-x}", "${HS_TOKEN"), 5,
     "unclosed ${"),
    ("bad env name", HEAD.replace("${HS_TOKEN:-pat-x}", "${1BAD}"), 5, "bad variable reference"),
    ("hubspot auth missing", "version: 1\nconnections:\n  - name: x\n    kind: hubspot\n"
     "    auth: {}\n", 5, "give access_token"),
    ("salesforce auth missing password", "version: 1\nconnections:\n  - name: x\n"
     "    kind: salesforce\n    auth: {username: u}\n", 5, "missing required key 'password'"),
    ("salesforce key for hubspot", HEAD + "    login_url: https://x\n", 6,
     "unknown key 'login_url'"),
    ("bad poll interval", HEAD + "    poll_every: 5 minutes\n", 6, "not an interval"),
    ("budget share above 1", HEAD + "    api_budget_share: 1.5\n", 6, "less than or equal to 1"),
    ("bad owner override zone", HEAD + "    owners: {'42': {timezone: Nowhere/City}}\n", 6,
     "unknown time zone"),
    ("step without timing", step("{id: s, channel: call}"), 9,
     "exactly one of at, every or spread"),
    ("step with two timings", step("{id: s, at: 1d, every: 1w, until: 4w}"), 9,
     "exactly one of at, every or spread (got at, every)"),
    ("every without until", step("{id: s, every: 1w}"), 9, "every needs until"),
    ("spread without window", step("{id: s, spread: 3, from: 1d}"), 9, "spread needs both"),
    ("until before from", step("{id: s, every: 1w, from: 4w, until: 1w}"), 9, "is before from"),
    ("zero every", step("{id: s, every: 0d, until: 4w}"), 9, "must be more than 0d"),
    ("bad step duration", step("{id: s, at: fortnight}"), 9, "'fortnight' is not a duration"),
    ("bad channel", step("{id: s, at: 1d, channel: fax}"), 9,
     "steps[s].channel: 'fax' is not one of 'email', 'call', 'todo'"),
    ("bad priority", step("{id: s, at: 1d, priority: urgent}"), 9,
     "'urgent' is not one of 'high', 'normal', 'low'"),
    ("bad anchor", step("{id: s, at: 1d, anchor: renewal_date}"), 9,
     "'renewal_date' is not one of 'close_date', 'contract_end'"),
    ("bad per", step("{id: s, at: 1d, per: contact}"), 9,
     "'contact' is not one of 'deal', 'stakeholder'"),
    ("unknown step key", step("{id: s, at: 1d, subjcet: hi}"), 9, "did you mean 'subject'"),
    ("duplicate step id", step("{id: s, at: 1d}\n      - {id: s, at: 2d}"), 10, "duplicate id 's'"),
    ("duplicate cadence id", HEAD + "cadences:\n  - id: c\n    steps: []\n  - id: c\n"
     "    steps: []\n", 9, "duplicate id 'c'"),
    ("bad regex", HEAD + "cadences:\n  - id: c\n    when: {loss_reason: {matches: \"(x\"}}\n"
     "    steps: []\n", 8, "invalid regular expression"),
    ("unknown when field", HEAD + "cadences:\n  - id: c\n    when: {colour: {eq: red}}\n"
     "    steps: []\n", 8, "unknown deal field 'colour'"),
    ("empty when test", HEAD + "cadences:\n  - id: c\n    when: {amount: {}}\n    steps: []\n",
     8, "empty test"),
    ("unknown when operator", HEAD + "cadences:\n  - id: c\n    when: {amount: {above: 5}}\n"
     "    steps: []\n", 8, "unknown key 'above'"),
    ("template unknown field", step("{id: s, at: 1d, subject: \"{{ deal.nmae }}\"}"), 9,
     "unknown field deal.nmae"),
    ("template unknown name", step("{id: s, at: 1d, subject: \"{{ customer.name }}\"}"), 9,
     "unknown name 'customer'"),
    ("template syntax", step("{id: s, at: 1d, body: \"{% if %}\"}"), 9, "template error"),
    ("template unknown filter", step("{id: s, at: 1d, subject: \"{{ deal.name | shout }}\"}"), 9,
     "template error"),
    ("template contact in per-deal step", step("{id: s, at: 1d, subject: \"{{ contact.name }}\"}"),
     9, "per: stakeholder"),
    ("template sandbox escape", step("{id: s, at: 1d, subject: \"{{ ''.__class__ }}\"}"), 9,
     "private attribute '__class__'"),
    ("template escape via item", step("{id: s, at: 1d, body: \"{{ deal['__init__'] }}\"}"), 9,
     "private attribute"),
    ("bad stop policy", HEAD + "stop: {on_reopen: delete_everything}\n", 6,
     "'delete_everything' is not one of 'close_open_tasks', 'keep_open_tasks'"),
    ("bad notify template", HEAD + "stop: {notify_subject: \"{{ deal.owner_name }}\"}\n", 6,
     "unknown field deal.owner_name"),
    ("bad service port", HEAD + "service: {http_port: 70000}\n", 6, "less than or equal to 65535"),
    ("reminder time 9am", "version: 1\ndefaults:\n  reminder_time: 9am\n", 3,
     "defaults.reminder_time: '9am' is not a time of day (expected HH:MM"),
    ("reminder time as a number", "version: 1\ndefaults:\n  reminder_time: 9\n", 3,
     "9 is not a time of day (expected HH:MM"),
    ("yaml indentation hint", "version: 1\n defaults:\n  timezone: UTC\n", 2,
     "2:10: YAML syntax error: mapping values are not allowed here; a plain value contains "
     "': ' or the indentation is off"),
    ("yaml tab hint", "version: 1\ndefaults:\n\ttimezone: UTC\n", 3,
     "3:1: YAML syntax error: found character '\\t' that cannot start any token; YAML "
     "indents with spaces only"),
    ("yaml unclosed quote hint", "version: 1\ndefaults: {timezone: \"UTC}\n", 3,
     "(while scanning a quoted scalar at 2:22); the file ends inside an open quote"),
    ("paths name cadences and steps by id", HEAD + "cadences:\n  - id: first\n    steps: []\n"
     "  - id: lost-to-competitor\n    steps:\n      - {id: intro, at: 1d}\n"
     "      - {id: post-mortem, at: 1d, channel: fax}\n", 12,
     "cadences[lost-to-competitor].steps[post-mortem].channel: 'fax' is not one of 'email', "
     "'call', 'todo'"),
    ("paths name connections by name", HEAD + "    api_budget_share: 1.5\n", 6,
     "connections[crm].api_budget_share:"),
    ("after a missing step", step("{id: a, at: 1d}\n      - {id: b, at: 2d, after: nope}"), 10,
     "after: no step 'nope' in this cadence; expected one of: a, b"),
    ("after a step of another cadence", HEAD + "cadences:\n  - id: c\n    steps:\n"
     "      - {id: a, at: 1d}\n  - id: d\n    steps:\n      - {id: b, at: 2d, after: a}\n",
     12, "it is a step of cadence 'c': after names a step of the same cadence"),
    ("after a recurring step", step("{id: a, every: 1w, until: 4w}\n"
                                    "      - {id: b, at: 2d, after: a}"), 10,
     "step 'a' is recurring (every or spread); name a single-occurrence step (at:)"),
    ("after itself", step("{id: a, at: 1d, after: a}"), 9, "cannot wait for itself"),
    ("after in a cycle", step("{id: a, at: 1d, after: b}\n      - {id: b, at: 2d, after: a}"), 9,
     "wait for each other in a cycle (a -> b -> a)"),
    ("max_wait without after", step("{id: a, at: 1d, max_wait: 21d}"), 9,
     "max_wait goes with after"),
    ("skip_if unknown kind", step("{id: a, at: 1d, skip_if: {activity: [sms], within: 14d}}"),
     9, "'sms' is not one of 'call', 'meeting', 'email', 'note', 'task'"),
    ("skip_if zero within", step("{id: a, at: 1d, skip_if: {activity: [call], within: 0d}}"),
     9, "must be more than 0d"),
    ("skip_if negative within", step("{id: a, at: 1d, skip_if: {activity: [call], "
                                     "within: -3d}}"), 9, "must be more than 0d"),
    ("away from after to", HEAD + "    owners: {'42': {away: [{from: 2027-12-20, "
     "to: 2027-12-10}]}}\n", 6, "from (2027-12-20) is after to (2027-12-10): swap them"),
    ("bad on_meeting", HEAD + "stop: {on_meeting: call}\n", 6,
     "'call' is not one of 'notify', 'stop', 'ignore'"),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "winback.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "text", "line", "words"), CASES, ids=[c[0] for c in CASES])
def test_malformed_config_is_rejected_with_its_line(
    tmp_path: Path, case: str, text: str, line: int, words: str
) -> None:
    """`winback validate` exits 2 and names the file, the line and the problem."""
    path = _write(tmp_path, text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [x for x in result.stderr.splitlines() if x.startswith(str(path))]
    assert lines, result.stderr
    matching = [x for x in lines if words in x]
    assert matching, f"{words!r} not in {lines}"
    assert any(x.startswith(f"{path}:{line}:") for x in matching), lines


def test_there_are_at_least_forty_malformed_cases() -> None:
    """The issue asks for 40 or more."""
    assert len(CASES) >= 40


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    """Errors are collected: a file with five problems gets five lines, in file order."""
    text = textwrap.dedent("""\
        version: 1
        defaults:
          timezone: Nowhere/City
          lead_time: soon
        connections:
          - name: a
            kind: hubspot
            auth: {access_token: literal-token-value}
        cadences:
          - id: c
            steps:
              - {id: s, at: 1d, channel: fax}
              - {id: s, at: 2d}
        """)
    with pytest.raises(ConfigErrors) as info:
        load_config(_write(tmp_path, text), env={})
    lines = [e.line for e in info.value.errors]
    assert lines == sorted(lines)
    assert lines == [3, 4, 8, 12, 13]


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    """A literal secret is refused without being echoed, even among other errors."""
    secret = "pat-na1-0123456789abcdef-SECRET"
    text = HEAD.replace('"${HS_TOKEN:-pat-x}"', secret) + "    poll_every: never\n"
    result = CliRunner().invoke(app, ["validate", str(_write(tmp_path, text))])
    assert result.exit_code == 2
    assert secret not in result.output
    assert "a secret must come from the environment" in result.stderr


def test_real_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    """The installed entry point, in its own process, exits 2 with no traceback."""
    path = _write(tmp_path, "version: 1\ndefaults: {timezone: Mars/Base}\n")
    proc = subprocess.run([sys.executable, "-m", "worker", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{path}:2:" in proc.stderr


def test_valid_config_prints_ok(tmp_path: Path) -> None:
    """A good file prints ok and exits 0; left-out cadences mean the default playbook."""
    result = CliRunner().invoke(app, ["validate", str(_write(tmp_path, HEAD))])
    assert result.exit_code == 0
    assert result.stdout.strip() == "ok"
    config = load_config(tmp_path / "winback.yaml", env={})
    assert [c.id for c in config.cadences] == ["disqualified", "lost-to-no-decision",
                                               "lost-to-competitor"]
