"""Read the YAML configuration: positions, `${VAR}` interpolation, validation, every error at once.

The YAML is read with ruamel's round-trip loader, which keeps the line and column of every key
and value. The tree is turned into plain data (interpolating `${VAR}` / `${VAR:-default}` from
the environment) while a map from config path to position is kept, so that both pydantic's
errors and our own checks point at `file:line:col`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from worker.settings import checks
from worker.settings.errors import ConfigError, ConfigErrors
from worker.settings.models import SECRET_KEYS, Config
from worker.settings.pydantic_errors import describe

Path_ = tuple[str | int, ...]
_VAR = re.compile(r"\$\$|\$\{([^}]*)\}?")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_config_dir() -> Path:
    """Where the shipped YAML lives: `config/` in a checkout, `worker/_config` in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_config", here.parent / "config"):
        if (candidate / "playbook.yaml").is_file():
            return candidate
    raise FileNotFoundError("the default playbook (config/playbook.yaml) is missing")


@dataclass
class Source:
    """Plain data read from YAML, with where each path came from."""

    data: Any
    file: str
    positions: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    names: dict[Path_, str] = field(default_factory=dict)  # connections[i] -> its name
    labels: dict[Path_, str] = field(default_factory=dict)  # list item -> its id, for paths

    def where(self, path: Path_, *, key: bool = False) -> tuple[str, int, int]:
        """The position of `path` (its key if asked and known), else of its nearest parent."""
        probe = path
        while True:
            table = self.key_positions if key else self.positions
            if probe in table:
                return table[probe]
            if probe in self.positions:
                return self.positions[probe]
            if not probe:
                return (self.file, 1, 1)
            probe = probe[:-1]

    def error(self, path: Path_, message: str, *, key: bool = False) -> ConfigError:
        file, line, col = self.where(path, key=key)
        return ConfigError(file, line, col, format_path(path, self.labels), message)


def format_path(path: Path_, labels: Mapping[Path_, str] | None = None) -> str:
    """`cadences[lost-to-competitor].steps[post-mortem].channel`: list items by their `id`
    (connections by `name`) when they have a unique one, else by index."""
    out = ""
    for index, part in enumerate(path):
        if isinstance(part, int):
            out += f"[{(labels or {}).get(path[:index + 1], part)}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_LABEL_CHARS = re.compile(r"^[A-Za-z0-9_.:@/-]+$")


def _label_items(node: CommentedSeq, path: Path_, source: Source) -> None:
    """Name the items of a list of mappings by their `id` / `name`, when every such label is
    plain text and unique among the siblings (a duplicate id keeps the index: unambiguous)."""
    key = "name" if path == ("connections",) else "id"
    found = [item.get(key) if isinstance(item, CommentedMap) else None for item in node]
    for index, label in enumerate(found):
        if isinstance(label, str) and _LABEL_CHARS.match(label) and found.count(label) == 1:
            source.labels[(*path, index)] = label


def read_yaml(path: Path, env: Mapping[str, str], *, prefix: Path_ = ()) -> Source:
    """Parse one YAML file into a `Source`; syntax errors become ConfigErrors on the source."""
    shown = _shown_name(path)
    source = Source(data=None, file=shown)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        source.errors.append(ConfigError(shown, 1, 1, "", f"cannot read the file: {exc.strerror}"))
        return source
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        start = exc.context_mark
        if exc.problem and exc.context and start is not None and start is not mark:
            problem += f" ({exc.context} at {start.line + 1}:{start.column + 1})"
        source.errors.append(ConfigError(shown, line, col, "",
                                         f"YAML syntax error: {problem}; {yaml_hint(problem)}"))
        return source
    except YAMLError as exc:
        source.errors.append(ConfigError(shown, 1, 1, "", f"YAML error: {exc}"))
        return source
    source.positions[prefix] = (shown, 1, 1)
    source.data = _plain(tree, prefix, source, env)
    return source


_YAML_HINTS = (
    ("'\\t'", "YAML indents with spaces only: replace the tab with spaces"),
    ("duplicate key", "a key may appear once in a mapping: remove or merge the repeated one"),
    ("mapping values are not allowed", "a plain value contains ': ' or the indentation is "
                                       "off: quote the value (\"...\") or align the key with "
                                       "the keys above it"),
    ("end of stream", "the file ends inside an open quote, [ or {: close it"),
    ("<stream end>", "the file ends inside an open quote, [ or {: close it"),
    ("expected ',' or", "a [ or { opened above is not closed before this point: close it, or "
                        "quote a value that contains , : [ ] { }"),
    ("expected <block end>", "the indentation does not match the lines above: align this "
                             "line with its siblings (spaces only)"),
    ("undefined alias", "*name needs an anchor &name defined earlier in the file"),
    ("cannot start any token", "quote the value (\"...\"): this character cannot start plain "
                               "YAML text"),
)


def yaml_hint(problem: str) -> str:
    """How to fix a YAML syntax error, by what the parser said."""
    for words, hint in _YAML_HINTS:
        if words in problem:
            return hint
    return "check the indentation (spaces only) and the quoting on this line and the one above"


def _shown_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plain(node: Any, path: Path_, source: Source, env: Mapping[str, str]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        if len(path) == 2 and path[0] == "connections" and isinstance(node.get("name"), str):
            source.names[path] = str(node["name"])
        for key in node:
            child = (*path, str(key))
            kline, kcol = node.lc.key(key)
            vline, vcol = node.lc.value(key)
            source.key_positions[child] = (source.file, kline + 1, kcol + 1)
            source.positions[child] = (source.file, vline + 1, vcol + 1)
            out[str(key)] = _plain(node[key], child, source, env)
        return out
    if isinstance(node, CommentedSeq):
        _label_items(node, path, source)
        items = []
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            source.positions[(*path, index)] = (source.file, line + 1, col + 1)
            items.append(_plain(item, (*path, index), source, env))
        return items
    if isinstance(node, str):
        return _interpolate(str(node), path, source, env)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime):
        return node
    if isinstance(node, date):
        return date(node.year, node.month, node.day)
    return node


def _is_secret(path: Path_) -> bool:
    return len(path) >= 4 and path[0] == "connections" and path[2] == "auth" \
        and path[3] in SECRET_KEYS


def _secret_var(path: Path_, source: Source) -> str:
    """A suggested variable name for a secret: <CONNECTION NAME>_<KEY>."""
    name = source.names.get(path[:2], f"CONNECTION{path[1]}")
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{name}_{path[3]}").upper()


def _interpolate(text: str, path: Path_, source: Source, env: Mapping[str, str]) -> str:
    if _is_secret(path) and "${" not in text:
        source.errors.append(source.error(
            path, "a secret must come from the environment, not the file "
                  f"(write \"${{{_secret_var(path, source)}}}\" and set that variable)"))
        return ""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        body = match.group(1)
        if not match.group(0).endswith("}") or body is None:
            source.errors.append(source.error(path, "unclosed ${ (expected ${NAME} or "
                                                    "${NAME:-default})"))
            return ""
        name, sep, default = body.partition(":-")
        if not _VAR_NAME.match(name):
            source.errors.append(source.error(
                path, f"bad variable reference ${{{body}}} (expected ${{NAME}} or "
                      "${NAME:-default}; NAME is letters, digits and _)"))
            return ""
        value = env.get(name)
        if value is None or (value == "" and sep):
            if sep:
                return default
            source.errors.append(source.error(
                path, f"environment variable {name} is not set (set it, or give a default: "
                      f"${{{name}:-...}})"))
            return ""
        return value

    return _VAR.sub(substitute, text) if "$" in text else text


class _Lenient(dict[str, str]):
    """An environment in which every variable is set (to "" when it is not)."""

    def get(self, key: str, default: object = None) -> str:
        return super().get(key, "")


def load_config(path: str | Path, env: Mapping[str, str] | None = None, *,
                require_env: bool = True) -> Config:
    """Load and check a configuration file; raise ConfigErrors listing every problem.

    `require_env=False` reads unset `${VAR}`s as empty text: for commands that never use the
    connections' credentials (`plan`, `schema`)."""
    env = os.environ if env is None else env
    if not require_env:
        env = _Lenient(env)
    path = Path(path)
    main = read_yaml(path, env)
    if main.data is None:
        raise ConfigErrors(main.errors or [ConfigError(
            main.file, 1, 1, "", "the file is empty (expected a mapping with version, "
                                 "connections, cadences)")])
    if not isinstance(main.data, dict):
        raise ConfigErrors([main.error((), "the top level must be a mapping (version: 1, ...)")])

    sources = [main]
    data = dict(main.data)
    if "cadences" not in data:
        playbook = read_yaml(default_config_dir() / "playbook.yaml", env)
        if isinstance(playbook.data, dict):
            data["cadences"] = playbook.data.get("cadences", [])
        sources.append(playbook)

    merged = _merge(sources)
    errors = merged.errors + checks.run(data, merged)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors += [describe(err, data, merged) for err in exc.errors()]
        raise ConfigErrors(errors) from None
    if errors:
        raise ConfigErrors(errors)
    return config


def _merge(sources: list[Source]) -> Source:
    merged = Source(data=None, file=sources[0].file)
    for source in reversed(sources):  # the main file's positions win
        merged.positions.update(source.positions)
        merged.key_positions.update(source.key_positions)
        merged.labels.update(source.labels)
        merged.errors += source.errors
    return merged
