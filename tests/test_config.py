"""autoresearch.toml: karpathy's defaults, then the file, then AUTORESEARCH_<KEY>, then explicit overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from autoresearch.config import ExperimentConfig, expand, load_config
from autoresearch.errors import UserError

KARPATHY = {
    "editable": ["train.py"],
    "readonly": ["prepare.py"],
    "command": "uv run train.py",
    "metric": "val_bpb",
    "direction": "minimize",
    "memory_metric": "peak_vram_mb",
    "timeout_seconds": 600,
    "program": "program.md",
    "data_check": "~/.cache/autoresearch",
    "big_gain": 0.005,
    "small_gain": 0.001,
    "major_lines": 20,
    "noise_repeats": 0,
}


def toml(repo: Path, text: str) -> Path:
    path = repo / "autoresearch.toml"
    path.write_text(text)
    return path


def user_error(repo: Path, **kwargs) -> str:
    with pytest.raises(UserError) as error:
        load_config(repo, **kwargs)
    message = str(error.value)
    assert message and "\n" not in message, repr(message)
    return message


# --- defaults and the file ---------------------------------------------------------------------------


def test_defaults_are_karpathys(tmp_path: Path):
    config = load_config(tmp_path, environ={})
    assert {key: getattr(config, key) for key in KARPATHY} == KARPATHY


def test_defaults_without_a_file_ignore_the_process_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_METRIC", "val_loss")
    assert load_config(tmp_path, environ={}).metric == "val_bpb"
    assert load_config(tmp_path).metric == "val_loss"  # environ=None means os.environ


def test_file_values_load(tmp_path: Path):
    toml(
        tmp_path,
        'editable = ["train.py", "model.py"]\n'
        'readonly = ["prepare.py", "data/tokenizer.py"]\n'
        'command = "{python} train.py --fast"\n'
        'metric = "accuracy"\n'
        'direction = "maximize"\n'
        'memory_metric = "rss_mb"\n'
        "timeout_seconds = 90\n"
        'program = "notes.md"\n'
        'data_check = "/data/ready"\n'
        "big_gain = 0.01\n"
        "small_gain = 0.002\n"
        "major_lines = 40\n"
        "noise_repeats = 3\n",
    )
    config = load_config(tmp_path, environ={})
    assert config.editable == ["train.py", "model.py"]
    assert config.readonly == ["prepare.py", "data/tokenizer.py"]
    assert config.command == "{python} train.py --fast"
    assert config.command_line("/usr/bin/python3") == "/usr/bin/python3 train.py --fast"
    assert (config.metric, config.direction, config.memory_metric) == ("accuracy", "maximize", "rss_mb")
    assert config.timeout_seconds == 90
    assert config.program == "notes.md"
    assert config.data_path() == Path("/data/ready")
    assert (config.big_gain, config.small_gain, config.major_lines, config.noise_repeats) == (0.01, 0.002, 40, 3)


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path):
    toml(tmp_path, "timeout_seconds = 30\n")
    config = load_config(tmp_path, environ={})
    assert config.timeout_seconds == 30
    assert config.command == "uv run train.py" and config.editable == ["train.py"]


def test_empty_file_is_the_defaults(tmp_path: Path):
    toml(tmp_path, "# nothing here\n")
    assert load_config(tmp_path, environ={}) == load_config(tmp_path / "nowhere", environ={})


# --- environment and explicit overrides --------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path):
    toml(tmp_path, 'timeout_seconds = 30\nmetric = "val_loss"\ncommand = "python train.py"\n')
    environ = {
        "AUTORESEARCH_TIMEOUT_SECONDS": "45",
        "AUTORESEARCH_DIRECTION": "maximize",
        "AUTORESEARCH_COMMAND": "uv run train.py --steps 10",
        "AUTORESEARCH_MAJOR_LINES": "5",
        "AUTORESEARCH_BIG_GAIN": "0.02",
    }
    config = load_config(tmp_path, environ=environ)
    assert config.timeout_seconds == 45
    assert config.direction == "maximize"
    assert config.command == "uv run train.py --steps 10"
    assert config.major_lines == 5 and config.big_gain == 0.02
    assert config.metric == "val_loss"  # not overridden: the file's value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("train.py,model.py", ["train.py", "model.py"]),
        (" train.py , model.py ,", ["train.py", "model.py"]),
        ("train.py", ["train.py"]),
        ('["train.py", "optim.py"]', ["train.py", "optim.py"]),
    ],
)
def test_environment_lists_for_editable(tmp_path: Path, raw: str, expected: list[str]):
    toml(tmp_path, 'editable = ["other.py"]\n')
    assert load_config(tmp_path, environ={"AUTORESEARCH_EDITABLE": raw}).editable == expected


def test_environment_list_for_readonly(tmp_path: Path):
    config = load_config(tmp_path, environ={"AUTORESEARCH_READONLY": "prepare.py,tokenizer.py"})
    assert config.readonly == ["prepare.py", "tokenizer.py"]


def test_unrelated_environment_variables_are_ignored(tmp_path: Path):
    config = load_config(tmp_path, environ={"AUTORESEARCH_CACHE": "/tmp/x", "AUTORESEARCH_NOPE": "1", "METRIC": "x"})
    assert config.metric == "val_bpb"


def test_explicit_overrides_win(tmp_path: Path):
    toml(tmp_path, "timeout_seconds = 30\n")
    config = load_config(
        tmp_path,
        overrides={"timeout_seconds": 5, "editable": ["a.py", "b.py"], "metric": None},
        environ={"AUTORESEARCH_TIMEOUT_SECONDS": "45", "AUTORESEARCH_METRIC": "val_loss"},
    )
    assert config.timeout_seconds == 5
    assert config.editable == ["a.py", "b.py"]
    assert config.metric == "val_loss"  # a None override is no override


def test_config_is_frozen(tmp_path: Path):
    config = load_config(tmp_path, environ={})
    with pytest.raises(ValidationError):
        config.timeout_seconds = 1  # type: ignore[misc]


# --- errors: one line, naming the key and where it came from ----------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("timeout_seconds = -5", "timeout_seconds"),
        ("timeout_seconds = 0", "timeout_seconds"),
        ('timeout_seconds = "ten minutes"', "timeout_seconds"),
        ('direction = "up"', "direction"),
        ("big_gain = -0.1", "big_gain"),
        ("major_lines = 0", "major_lines"),
        ("noise_repeats = -1", "noise_repeats"),
        ('editable = "train.py"', "editable"),
        ("editable = []", "editable"),
        ('editable = ["../outside.py"]', "editable"),
        ('readonly = ["/etc/passwd"]', "readonly"),
        ('metric = "val bpb"', "metric"),
        ('command = ""', "command"),
    ],
)
def test_invalid_value_in_the_file_names_key_and_file(tmp_path: Path, line: str, key: str):
    path = toml(tmp_path, f'program = "program.md"\n{line}\n')
    message = user_error(tmp_path, environ={})
    assert repr(key) in message or key in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("AUTORESEARCH_DIRECTION", "sideways", "direction"),
        ("AUTORESEARCH_TIMEOUT_SECONDS", "soon", "timeout_seconds"),
        ("AUTORESEARCH_MAJOR_LINES", "1.5", "major_lines"),
        ("AUTORESEARCH_EDITABLE", "", "editable"),
    ],
)
def test_invalid_environment_value_names_key_and_variable(tmp_path: Path, variable: str, value: str, key: str):
    toml(tmp_path, "timeout_seconds = 30\n")
    message = user_error(tmp_path, environ={variable: value})
    assert key in message
    assert variable in message


def test_invalid_override_names_the_command_line(tmp_path: Path):
    message = user_error(tmp_path, overrides={"timeout_seconds": -1}, environ={})
    assert "timeout_seconds" in message and "command line" in message


def test_malformed_json_list_in_the_environment_is_a_user_error(tmp_path: Path):
    message = user_error(tmp_path, environ={"AUTORESEARCH_EDITABLE": '["train.py"'})
    assert "editable" in message.lower()
    assert "AUTORESEARCH_EDITABLE" in message


def test_unknown_key_in_the_file_is_named(tmp_path: Path):
    path = toml(tmp_path, "timeout = 30\n")
    message = user_error(tmp_path, environ={})
    assert "'timeout'" in message and "unknown" in message
    assert str(path) in message
    assert "timeout_seconds" in message  # the known keys are listed


def test_unknown_override_is_named(tmp_path: Path):
    message = user_error(tmp_path, overrides={"gpus": 2}, environ={})
    assert "gpus" in message and "unknown" in message


@pytest.mark.parametrize(
    "text",
    ["command = \n", 'editable = ["train.py"\n', "[[[\n", "timeout_seconds = 30\ntimeout_seconds = 40\n", "a b c\n"],
)
def test_invalid_toml_is_a_one_line_error(tmp_path: Path, text: str):
    path = toml(tmp_path, text)
    message = user_error(tmp_path, environ={})
    assert str(path) in message
    assert "TOML" in message


def test_toml_that_is_not_utf8_is_a_one_line_error(tmp_path: Path):
    path = tmp_path / "autoresearch.toml"
    path.write_bytes(b'command = "uv run train.py"  # caf\xe9 (latin-1)\n')
    message = user_error(tmp_path, environ={})
    assert str(path) in message


# --- expand ------------------------------------------------------------------------------------------


def test_expand_default_syntax(monkeypatch):
    monkeypatch.setenv("AR_TEST_DIR", "/data/ar")
    assert expand("${AR_TEST_DIR:-/fallback}/cache") == "/data/ar/cache"
    monkeypatch.delenv("AR_TEST_DIR")
    assert expand("${AR_TEST_DIR:-/fallback}/cache") == "/fallback/cache"
    monkeypatch.setenv("AR_TEST_DIR", "")  # like a shell, :- also replaces an empty value
    assert expand("${AR_TEST_DIR:-/fallback}/cache") == "/fallback/cache"


def test_expand_plain_variables(monkeypatch):
    monkeypatch.setenv("AR_TEST_DIR", "/data/ar")
    assert expand("${AR_TEST_DIR}/x") == "/data/ar/x"
    assert expand("$AR_TEST_DIR/x") == "/data/ar/x"
    monkeypatch.delenv("AR_TEST_DIR")
    assert expand("${AR_TEST_DIR}/x") == "/x"  # unset without default: empty, like a shell


def test_expand_home(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand("~/.cache/autoresearch") == f"{tmp_path}/.cache/autoresearch"
    assert expand("~") == str(tmp_path)
    assert expand("/abs/~/x") == "/abs/~/x"  # only a leading ~


def test_expand_default_that_starts_with_home(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AR_TEST_CACHE", raising=False)
    assert expand("${AR_TEST_CACHE:-~/.cache/autoresearch}") == f"{tmp_path}/.cache/autoresearch"


def test_data_path_expands(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_config(tmp_path, environ={}).data_path() == tmp_path / ".cache" / "autoresearch"
    monkeypatch.setenv("AR_TEST_DATA", "/srv/data")
    toml(tmp_path, 'data_check = "${AR_TEST_DATA:-~/d}/prepared"\n')
    assert load_config(tmp_path, environ={}).data_path() == Path("/srv/data/prepared")


def test_model_defaults_match_load_config(tmp_path: Path):
    assert ExperimentConfig() == load_config(tmp_path, environ={})
    assert os.path.basename(ExperimentConfig().editable[0]) == "train.py"
