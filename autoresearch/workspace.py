"""Where things live for one experiment repo and tag: branch, ledger, state, worktrees, logs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from datetime import date
from functools import cached_property
from pathlib import Path

from autoresearch import ledger
from autoresearch.config import ExperimentConfig, load_config
from autoresearch.errors import UserError
from autoresearch.gitops import Git
from autoresearch.models import Usage

WORK_DIR = ".autoresearch"  # in the experiment repo, untracked (worktrees, logs)
EXCLUDES = [ledger.LEDGER_FILE, "run.log", f"{WORK_DIR}/", "__pycache__/"]
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_tag(today: date | None = None) -> str:
    """Today as karpathy names his runs: `nov25`."""
    return (today or date.today()).strftime("%b%d").lower()


def validate_tag(tag: str) -> str:
    if not _TAG.match(tag) or tag.endswith(".lock") or ".." in tag:
        raise UserError(f"invalid --tag {tag!r}: use letters, digits, '.', '_' or '-' (e.g. nov25)")
    return tag


class Workspace:
    def __init__(self, repo: Path | str, tag: str | None = None, overrides: dict | None = None) -> None:
        self.git = Git(Path(repo).expanduser())
        self.root = self.git.root
        self.tag = validate_tag(tag or default_tag())
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}

    @cached_property
    def config(self) -> ExperimentConfig:
        return load_config(self.root, self.overrides)

    @property
    def branch(self) -> str:
        return f"autoresearch/{self.tag}"

    @property
    def ledger_path(self) -> Path:
        return self.root / ledger.LEDGER_FILE

    @property
    def state_dir(self) -> Path:
        return self.git.common_dir / "autoresearch"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "loop.lock"

    @property
    def training_record(self) -> Path:
        return self.state_dir / "training.json"

    @property
    def state_path(self) -> Path:
        return self.state_dir / f"{self.tag}.json"

    def worktree(self, slot: int = 0) -> Path:
        return worktree_path(self.root, slot)

    def log_path(self, iteration: int, commit: str, run: int = 0) -> Path:
        return log_path(self.root, self.tag, iteration, commit, run)

    def experiment_ref(self, commit: str) -> str:
        return f"refs/autoresearch/{self.tag}/{commit}"

    def move_branch(self, commit: str, expected_tip: str | None = None) -> None:
        """Point the loop's branch (checked out) and working tree at `commit`, never over the user's work."""
        if self.git.current_branch() != self.branch:
            raise UserError(f"{self.root} is no longer on {self.branch}; check it out again, then resume")
        tip = self.git.resolve(self.branch)
        if tip == commit:
            return
        if expected_tip is not None and tip != expected_tip:
            raise UserError(
                f"{self.branch} moved to {tip[:7]} behind the loop's back; move it back to {expected_tip[:7]}, then resume"
            )
        self.verify_readonly(self.root)
        dirty = self.git.dirty([])
        if dirty:
            raise UserError(
                f"uncommitted changes to {', '.join(dirty)} appeared while the loop ran; commit or stash them, then resume"
            )
        self.git.reset_hard(commit)

    # --- the loop's own record: loop id and read-only checksums, fixed at setup ----------------------
    def load_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None

    def save_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        temp = self.state_path.with_suffix(".tmp")
        temp.write_text(json.dumps(state, indent=2))
        os.replace(temp, self.state_path)

    def record(self, section: str, key: str, value: object) -> None:
        """Set state[section][key] (idempotent: a retried task writes the same entry again)."""
        state = self.load_state() or self.new_state()
        state.setdefault(section, {})[key] = value
        self.save_state(state)

    def recorded(self, section: str) -> dict:
        return (self.load_state() or {}).get(section, {})

    def loop_usage(self) -> Usage:
        """Tokens and dollars of every proposal of this loop (state `usage`, one entry per iteration)."""
        return sum((Usage.model_validate(u) for u in self.recorded("usage").values()), Usage())

    def new_state(self) -> dict:
        return {"tag": self.tag, "loop_id": uuid.uuid4().hex[:12], "readonly": self.readonly_checksums(self.root)}

    def readonly_checksums(self, root: Path) -> dict[str, str]:
        return {path: sha256(root / path) for path in self.config.readonly}

    def recorded_checksums(self) -> dict[str, str]:
        return (self.load_state() or {}).get("readonly", {})

    def verify_readonly(self, root: Path) -> None:
        """The read-only files under `root` still match the checksums recorded at setup."""
        verify_checksums(root, self.recorded_checksums(), self.branch)

    def other_tags(self) -> list[str]:
        """Tags of earlier loops in this repo (by their state files)."""
        if not self.state_dir.exists():
            return []
        return sorted(p.stem for p in self.state_dir.glob("*.json") if p.stem != self.tag and p.stem != "training")


def worktree_path(root: Path, slot: int, seat: int = 0) -> Path:
    """The persistent checkout of training slot `slot` (per-checkout .venv and caches survive); a GPU
    worker's next run gets ready in the slot's second seat while the first trains (autoresearch/slot_turn.py)."""
    return root / WORK_DIR / "worktrees" / (f"slot-{slot}" if seat == 0 else f"slot-{slot}-seat{seat}")


def log_path(root: Path, tag: str, iteration: int, commit: str, run: int = 0) -> Path:
    repeat = f"-run{run}" if run else ""  # a repeat of the same commit (--confirm)
    return root / WORK_DIR / "logs" / tag / f"{iteration:04d}-{commit[:7]}{repeat}.log"


def verify_checksums(root: Path, expected_checksums: dict[str, str], branch: str) -> None:
    for path, expected in expected_checksums.items():
        actual = sha256(root / path) if (root / path).is_file() else None
        if actual != expected:
            now = actual[:12] if actual else "missing"
            raise UserError(
                f"read-only file {path} changed since setup (sha256 {expected[:12]} recorded, now {now}) in {root}; "
                f"restore it (git checkout {branch} -- {path}), then run again"
            )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
