"""`auth.flow` of a Salesforce connection in the config: what each flow needs, the flow an
`auth` without `flow` is read as, `validate`'s warnings on the legacy flows (exit 0), and
client_credentials refused at the shared login hosts (exit 2, naming the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.salesforce_flows import infer_flow
from worker.cli.main import app

HEAD = "version: 1\nconnections:\n  - name: sf\n    kind: salesforce\n"
JWT = ('    auth: {flow: jwt, username: u@x.example, client_id: ck,\n'
       '           private_key_file: /etc/winback/sf.key}\n')
SOAP = ('    auth: {username: u@x.example, password: "${SF_PW:-Pw-S3cret-1}",\n'
        '           security_token: "${SF_T:-t}"}\n')
CC = '    auth: {flow: client_credentials, client_id: ck, client_secret: "${SF_CS:-Cs-S3cret-2}"}\n'


def validate(tmp_path: Path, text: str, command: str = "validate") -> tuple[int, str, str]:
    path = tmp_path / "winback.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, [command, str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_a_jwt_connection_validates_without_warnings(tmp_path: Path) -> None:
    code, out, err = validate(tmp_path, HEAD + JWT)
    assert (code, out.strip(), err) == (0, "ok", "")


@pytest.mark.parametrize(("auth", "flow", "facts"), [
    (SOAP, "soap", ["inferred", "Winter '26", "API 65.0", "Summer '27"]),
    (SOAP.replace("{username", "{flow: soap, username"), "soap", ["auth.flow is soap"]),
    ('    auth: {flow: password, username: u, password: "${SF_P:-p}", client_id: ck,\n'
     '           client_secret: "${SF_CS:-Cs-S3cret-2}"}\n', "password", ["Summer '23"]),
])
def test_legacy_flows_validate_with_a_warning_naming_the_way_to_jwt(
        tmp_path: Path, auth: str, flow: str, facts: list[str]) -> None:
    code, out, err = validate(tmp_path, HEAD + auth)
    assert code == 0 and out.strip() == "ok"
    assert err.startswith("warning: ") and "connections[0].auth (sf)" in err
    assert f"{flow} is inferred, a legacy login" in err or f"is {flow}, a legacy login" in err
    assert "flow: jwt" in err and "private_key_file" in err
    for fact in facts:
        assert fact in err
    assert "S3cret" not in out + err


@pytest.mark.parametrize("login_url", ["", "    login_url: https://login.salesforce.com\n",
                                       "    login_url: https://TEST.salesforce.com/\n"])
@pytest.mark.parametrize("command", ["validate", "sync", "doctor"])
def test_client_credentials_at_a_shared_login_host_is_exit_2_with_the_fix(
        tmp_path: Path, login_url: str, command: str) -> None:
    code, out, err = validate(tmp_path, HEAD + login_url + CC, command)
    if command == "doctor":  # doctor reports it as its first check, exit 1
        assert code == 1 and "configuration valid" in out and "My Domain" in out
        return
    assert code == 2
    assert "refuses client_credentials logins" in err and "My Domain" in err
    assert "https://acme.my.salesforce.com" in err and "S3cret" not in out + err


def test_client_credentials_at_the_orgs_my_domain_validates(tmp_path: Path) -> None:
    code, out, err = validate(tmp_path,
                              HEAD + "    login_url: https://acme.my.salesforce.com\n" + CC)
    assert (code, out.strip(), err) == (0, "ok", "")


@pytest.mark.parametrize(("auth", "words"), [
    ("{flow: jwt, username: u, client_id: ck}", "exactly one of private_key_file"),
    ('{flow: jwt, username: u, client_id: ck, private_key_file: a, private_key: "${K:-b}"}',
     "not both"),
    ('{flow: jwt, username: u, client_id: ck, private_key_file: a, password: "${P:-p}"}',
     "password is not used by flow jwt: remove it"),
    ("{flow: jwt, client_id: ck, private_key_file: a}",
     "missing required key 'username' (flow jwt needs username, client_id)"),
    ("{flow: client_credentials, client_id: ck}", "missing required key 'client_secret'"),
    ("{flow: soap, username: u}", "missing required key 'password' (flow soap needs"),
    ('{flow: password, username: u, password: "${P:-p}"}',
     "missing required keys 'client_id', 'client_secret' (flow password needs"),
    ("{flow: saml, username: u}", "jwt"),
])
def test_each_flow_says_what_it_lacks_or_does_not_use(tmp_path: Path, auth: str,
                                                      words: str) -> None:
    code, _, err = validate(tmp_path, HEAD + f"    auth: {auth}\n")
    assert code == 2 and words in err and "winback.yaml:5" in err


def test_an_auth_without_flow_keeps_its_old_meaning() -> None:
    assert infer_flow({"username": "u", "password": "p", "security_token": "t"}) == "soap"
    assert infer_flow({"username": "u", "password": "p", "client_id": "c",
                       "client_secret": "s"}) == "password"
    assert infer_flow({"username": "u", "client_id": "c", "private_key_file": "k"}) == "jwt"
    assert infer_flow({"client_id": "c", "client_secret": "s"}) == "client_credentials"
