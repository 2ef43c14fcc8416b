"""The committed JSON Schema matches the models, and the shipped YAML validates."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.main import app
from worker.settings.loader import default_config_dir
from worker.settings.models import model_json_schema

CONFIG = Path(__file__).resolve().parent.parent.parent / "config"


def test_committed_schema_is_up_to_date() -> None:
    """config/winback.schema.json is what `winback schema` prints (regenerate it if not)."""
    committed = json.loads((CONFIG / "winback.schema.json").read_text())
    assert committed == model_json_schema(), "run: winback schema -o config/winback.schema.json"


def test_schema_command_prints_the_schema() -> None:
    """`winback schema` writes JSON Schema to stdout."""
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "winback configuration"


def test_shipped_example_validates_when_its_variables_are_set(monkeypatch: object) -> None:
    """config/winback.yaml is valid once its ${VAR}s are set."""
    env = {"SF_USERNAME": "u", "SF_CLIENT_ID": "c", "SF_PRIVATE_KEY_FILE": "/k.pem",
           "HUBSPOT_TOKEN": "pat-x"}
    result = CliRunner().invoke(app, ["validate", str(default_config_dir() / "winback.yaml")],
                                env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok"


def test_configuration_reference_in_docs_is_generated_from_the_models() -> None:
    """docs/configuration.md's key reference matches the models (python -m worker.cli.docgen)."""
    from worker.cli.docgen import render

    path = CONFIG.parent / "docs" / "configuration.md"
    text = path.read_text()
    assert render(text) == text, "run: python -m worker.cli.docgen"
