"""Configuration errors an ops person can act on: `file:line:col: where: what (expected)`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ConfigError:
    file: str
    line: int
    col: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{self.file}:{self.line}:{self.col}:{where} {self.message}"


class ConfigErrors(Exception):
    """Every problem found in a configuration file, in file order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(set(errors))
        super().__init__("\n".join(str(e) for e in self.errors))
