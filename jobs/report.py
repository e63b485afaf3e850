"""The report an artist can send us about one job: what was asked, what happened, and the
job's redacted exchanges with its service (net/exchanges.py). The same text is copied by the
job details' "Copy report" and printed by the command line's `--report`.

Nothing secret goes in: keys and secrets are masked in every form, the request is described
without file paths or inline data, and a remote id that carries a secret is shown as its
provider allows (`Provider.shown_id`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..net.exchanges import format_lines, read_lines, scrub
from ..net.redact import secret_forms
from ..providers.registry import label, provider_class
from .job import Job
from .journal import Journal

# Request options worth showing, and how (file paths become file names).
_PATH_OPTIONS = ("reference_image_path",)
_SKIPPED_OPTIONS = ("model_url", "mesh_url", "reference_image_url")  # the artist's links


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _options(options: dict[str, Any]) -> str:
    shown = []
    for key in sorted(options):
        value = options[key]
        if key in _SKIPPED_OPTIONS:
            value = "(a link, not shown)" if value else ""
        elif key in _PATH_OPTIONS:
            value = os.path.basename(str(value))
        elif isinstance(value, (dict, list)):
            value = "…"
        if value not in ("", None):
            shown.append(f"{key}={value}")
    return ", ".join(shown) or "none"


def report_text(job: Job, lines: list[dict[str, Any]], *, base_url: str = "",
                about: str = "", secrets: Iterable[str] = ()) -> str:
    """The whole report for `job`, one string, every line masked."""
    cls = provider_class(job.provider)
    host = urlsplit(base_url).hostname or "" if base_url else ""
    shown_id = cls.shown_id(job.remote_id) if cls is not None else job.remote_id
    req = job.request
    out = [f"Text to Texture report — job {job.id}"]
    if about:
        out.append(about)
    out += [
        f"Provider: {label(job.provider)}" + (f" ({host})" if host else ""),
        f"Object: '{job.object_name}' — {job.state.value}, {round(job.progress * 100)}%",
        f"Message: {job.message}",
        f"Remote id: {shown_id or '(none: nothing was created)'}",
        f"Started {_when(job.created)}, last change {_when(job.updated)}",
        f"Prompt ({len(req.prompt)} characters): {req.prompt}",
        f"Settings: {req.resolution} px, PBR {'on' if req.enable_pbr else 'off'}, seed "
        f"{req.seed}, options: {_options(req.options or {})}",
    ]
    for key in ("warning", "note"):
        if job.extra.get(key):
            out.append(f"{key.capitalize()}: {job.extra[key]}")
    out.append(f"Exchanges with {label(job.provider)} ({len(lines)}):")
    out += format_lines(lines)
    return scrub("\n".join(out), secret_forms(secrets)) + "\n"


def job_report(journal: Journal, job: Job, *, base_url: str = "", about: str = "",
               secrets: Iterable[str] = ()) -> str:
    """`report_text` for a journaled job, with the exchanges its log file kept."""
    lines = read_lines(str(journal.exchanges_path(job.id)))
    return report_text(job, lines, base_url=base_url, about=about, secrets=secrets)
