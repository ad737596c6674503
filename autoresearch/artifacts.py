"""What the Prefect UI shows of the whole loop after each iteration: pure builders, then one thin publisher.

Two artifacts with keys stable across the loop, so the UI's Artifacts page always shows the latest
version (and keeps the history): `ledger-<tag>`, results.tsv as a table, and `summary-<tag>`, a markdown
page with karpathy's progress plot, baseline, best, improvement and the top gains. The plot is an
inline PNG (`![..](data:image/png;base64,..)`): the Prefect 3.9 UI renders data:image URIs in markdown
artifacts, while `create_image_artifact` only links an image that is already served somewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pandas as pd

from autoresearch.plot import plot_data, render_png
from autoresearch.secrets import redact
from autoresearch.summary import Direction, summarize

MARKDOWN_PUNCTUATION = re.compile(r"[\\`*_{}\[\]()#+\-.!|~:]")
PLOT_SIZE, PLOT_DPI = (12, 6), 120  # ~1440x720 px, labels readable in the artifact page; ~80 KB per iteration


def artifact_key(kind: str, tag: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for `kind` of loop `tag`, unique per tag."""
    slug = re.sub(r"[^a-z0-9-]+", "-", tag.lower()).strip("-")
    if slug != tag:  # two tags must not share a key (nov25 and NOV25, v1.2 and v1-2)
        slug = f"{slug}-{hashlib.sha1(tag.encode()).hexdigest()[:6]}".strip("-")
    return f"{kind}-{slug}"


def ledger_table(results: pd.DataFrame, metric: str) -> list[dict[str, str]]:
    """results.tsv as table rows, numbered like `autoresearch status` and the plot's x axis."""
    return [
        {
            "#": str(number),
            "commit": row.commit,
            metric: f"{row.value:.6f}",
            "memory_gb": f"{row.memory_gb:.1f}",
            "status": row.status,
            "description": redact(row.description),
        }
        for number, row in results.iterrows()
    ]


def text(value: str) -> str:
    """Untrusted text (a model's rationale, a description) that renders as itself in markdown: no image,
    link, autolink, HTML or formatting. Every markdown punctuation mark is backslash-escaped, HTML's too;
    known secrets are redacted first (autoresearch.secrets)."""
    value = redact(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MARKDOWN_PUNCTUATION.sub(r"\\\g<0>", value)


def cell(value: str) -> str:
    """Untrusted text that stays inside one markdown table cell and renders as text."""
    return text(" ".join(value.split()))


def fenced(value: str, language: str = "text") -> str:
    """A code block that `value` cannot close early: the fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{value}\n{fence}"


def summary_markdown(results: pd.DataFrame, metric: str, direction: Direction, tag: str, png: bytes | None = None) -> str:
    s = summarize(results, direction)
    parts = [f"## {tag}: {s.experiments} experiment{'s' * (s.experiments != 1)}, {s.keeps} kept"]
    if png:
        parts.append(f"![progress plot](data:image/png;base64,{base64.b64encode(png).decode()})")
    if s.best is None:
        parts.append(f"No keep yet: {s.discards} discarded, {s.crashes} crashed.")
        return "\n\n".join(parts)
    percent = "" if s.improvement_percent is None else f"{s.improvement_percent:+.2f}%"
    parts.append(
        f"| | {metric} | |\n|---|---|---|\n"
        f"| baseline | {s.baseline:.6f} | |\n"
        f"| best | {s.best:.6f} | `{cell(s.best_commit or '')}` {cell(s.best_description or '')} |\n"
        f"| improvement | {s.improvement:+.6f} | {percent} ({'lower' if direction == 'minimize' else 'higher'} is better) |"
    )
    parts.append(f"**{s.experiments} runs:** {s.keeps} keep · {s.discards} discard · {s.crashes} crash")
    if s.top_gains:
        lines = [
            "### Top gains (each keep against the keep before it)",
            "",
            f"| # | commit | gain | {metric} | description |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {g.number} | `{cell(g.commit)}` | {g.gain:+.6f} | {g.value:.6f} | {cell(g.description)} |" for g in s.top_gains
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def progress_png(results: pd.DataFrame, metric: str, direction: Direction, tag: str) -> bytes:
    return render_png(plot_data(results, metric, direction, tag), size=PLOT_SIZE, dpi=PLOT_DPI)


def publish_loop_artifacts(results: pd.DataFrame, metric: str, direction: Direction, tag: str) -> None:
    """Create this iteration's versions of `ledger-<tag>` and `summary-<tag>` (in the current flow run)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    done = f"after {len(results)} runs"
    create_table_artifact(
        ledger_table(results, metric), key=artifact_key("ledger", tag), description=f"results.tsv of {tag}, {done}"
    )
    markdown = summary_markdown(results, metric, direction, tag, progress_png(results, metric, direction, tag))
    create_markdown_artifact(redact(markdown), key=artifact_key("summary", tag), description=f"progress of {tag}, {done}")
