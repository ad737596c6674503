"""Credentials stay out of experiments: a clean environment for every experiment subprocess, and redaction.

The training, the `prepare` command and the agent CLI run with an environment that has no provider
credentials: every variable named `*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD` (and `*_SECRET_KEY`,
`*_SECRET_ACCESS_KEY`), plus the names in the config key `env_drop`, are removed; `keep` names the ones a
subprocess needs (the agent's own key, config key `agent_env`).

Any secret value this process knows (those variables' values, and the values of Prefect Secret blocks the
loop loads, registered with `remember`) is replaced by `[redacted]` in what is stored or sent: archived run
logs, artifacts, the crash-fix prompt.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

REDACTED = "[redacted]"
CREDENTIAL_NAME = re.compile(r"(?:^|_)(?:API_KEY|TOKEN|SECRET|PASSWORD|SECRET_KEY|SECRET_ACCESS_KEY)$", re.IGNORECASE)
MIN_SECRET_LENGTH = 6  # shorter values ("none", "x") would redact ordinary words
_remembered: set[str] = set()
_lock = threading.Lock()


def is_credential(name: str, drop: Iterable[str] = ()) -> bool:
    return bool(CREDENTIAL_NAME.search(name)) or name in set(drop)


def clean_env(environ: Mapping[str, str] | None = None, drop: Iterable[str] = (), keep: Iterable[str] = ()) -> dict[str, str]:
    """`environ` (default: this process's) without credentials, except the names in `keep`."""
    environ = os.environ if environ is None else environ
    drop, keep = set(drop), set(keep)
    return {name: value for name, value in environ.items() if name in keep or not is_credential(name, drop)}


def remember(value: str) -> str:
    """A secret this process loaded (a Prefect Secret block's value): redacted from now on. Returns it."""
    if len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _remembered.add(value)
    return value


def known_secrets(environ: Mapping[str, str] | None = None, drop: Iterable[str] = ()) -> list[str]:
    """Every secret value known here, longest first (so a secret that contains another goes whole)."""
    environ = os.environ if environ is None else environ
    drop = set(drop)
    values = {value for name, value in environ.items() if is_credential(name, drop)}
    with _lock:
        values |= _remembered
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret value replaced by [redacted]."""
    for secret in known_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_file(path: Path, secrets: Iterable[str] | None = None) -> bool:
    """Rewrite `path` with the secrets redacted (in place, atomically). True when it changed."""
    secrets = known_secrets() if secrets is None else list(secrets)
    try:
        data = path.read_bytes()
    except OSError:
        return False
    clean = data
    for secret in secrets:
        clean = clean.replace(secret.encode(), REDACTED.encode())
    if clean == data:
        return False
    temp = path.with_name(path.name + ".redacting")
    temp.write_bytes(clean)
    os.replace(temp, path)
    return True
