"""autoresearch.toml < AUTORESEARCH_<KEY> < CLI flags: one pydantic-settings model, three sources.

The defaults ARE karpathy/autoresearch, so a plain clone of it needs no file. Errors name the key and the
source it came from (the file, the variable, the command line), in one line.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from autoresearch.errors import UserError

CONFIG_FILE = "autoresearch.toml"
ENV_PREFIX = "AUTORESEARCH_"
COMMAND_LINE = "command line"


class ExperimentConfig(BaseSettings):
    """The experiment's settings. `ExperimentConfig()` is karpathy's defaults; `load_config` layers the sources."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_prefix=ENV_PREFIX)

    editable: list[str] = Field(default_factory=lambda: ["train.py"], min_length=1)
    readonly: list[str] = Field(default_factory=lambda: ["prepare.py"])
    command: str = Field("uv run train.py", min_length=1)  # {python} expands to our interpreter
    metric: str = Field("val_bpb", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    direction: Literal["minimize", "maximize"] = "minimize"
    memory_metric: str = Field("peak_vram_mb", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: float = Field(600, gt=0)
    program: str = "program.md"
    data_check: str = "~/.cache/autoresearch"  # must exist and be non-empty before the loop starts
    prepare_command: str = "uv run prepare.py"  # named in the "data not prepared" message
    big_gain: float = Field(0.005, ge=0)
    small_gain: float = Field(0.001, ge=0)
    major_lines: int = Field(20, ge=1)
    noise_repeats: int = Field(0, ge=0)
    seed: int = 0
    proposer_timeout_seconds: float = Field(180, gt=0)  # one model request (autoresearch/patience.py)
    proposer_patience_seconds: float = Field(1800, ge=0)  # provider failures this long stop the loop (exit 3)
    env_drop: list[str] = Field(default_factory=list)  # variables kept out of experiments, besides *_API_KEY etc.
    agent_env: list[str] = Field(default_factory=list)  # credentials the agent CLI keeps (its own API key)
    protected_names: list[str] = Field(default_factory=list)  # metric guard; empty: all read-only imports

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, **_: PydanticBaseSettingsSource
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what it is given: `load_config` reads the file and the environment, so it can name them in errors."""
        return (init_settings,)

    @field_validator("editable", "readonly")
    @classmethod
    def _relative_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if Path(path).is_absolute() or ".." in Path(path).parts:
                raise ValueError(f"{path!r} must be a path inside the repo")
        return paths

    def data_path(self) -> Path:
        return Path(expand(self.data_check))

    def command_line(self, python: str) -> str:
        return self.command.replace("{python}", python)


_DEFAULT_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand(text: str) -> str:
    """Expand ${VAR}, ${VAR:-default}, $VAR and ~ the way a shell would."""
    text = _DEFAULT_VAR.sub(lambda m: os.environ.get(m[1]) or (m[2] or ""), text)
    return os.path.expanduser(os.path.expandvars(text))


class EnvironmentSource(EnvSettingsSource):
    """AUTORESEARCH_<KEY> from a given mapping; a list is a JSON list or comma-separated paths."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        super().__init__(ExperimentConfig, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self.environ.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        text = str(value).strip()
        return json.loads(text) if text.startswith("[") else [part.strip() for part in text.split(",") if part.strip()]


def variable(key: str) -> str:
    return f"environment variable {ENV_PREFIX}{key.upper()}"


def load_config(
    repo: Path, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> ExperimentConfig:
    """File, then AUTORESEARCH_<KEY> variables, then explicit overrides (CLI flags); None is no override."""
    path = repo / CONFIG_FILE
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for layer, name_of in (
        (_file_values(path), lambda key: str(path)),
        (_environment_values(os.environ if environ is None else environ), variable),
        ({key: value for key, value in (overrides or {}).items() if value is not None}, lambda key: COMMAND_LINE),
    ):
        values.update(layer)
        source.update({key: name_of(key) for key in layer})
    try:
        return ExperimentConfig(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        where = source.get(key, str(path))
        if error["type"] == "extra_forbidden":
            known = ", ".join(ExperimentConfig.model_fields)
            raise UserError(f"{where}: unknown key {key!r}; known keys: {known}") from None
        raise UserError(f"{where}: invalid value for {key!r}: {error['msg']}") from None


def _file_values(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return TomlConfigSettingsSource(ExperimentConfig, toml_file=path)()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the file") from None


def _environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return EnvironmentSource(environ)()
    except SettingsError as exc:
        key = next((name for name in ExperimentConfig.model_fields if repr(name) in str(exc) or f'"{name}"' in str(exc)), "?")
        raise UserError(f"{variable(key)}: invalid value for {key!r}: expected a JSON list or comma-separated paths") from None


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str, flag: str = "--stop-after") -> float:
    """`10h`, `90m`, `1h30m`, `45s` or plain seconds -> seconds."""
    text = text.strip().lower()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise UserError(f"invalid {flag} {text!r}: use e.g. 10h, 90m, 1h30m or seconds")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds
