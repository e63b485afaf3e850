"""The report of one job (jobs/report.py) with what only Blender knows: the extension's and
Blender's versions, the provider's base URL and the keys to keep out of it."""

from __future__ import annotations

import platform
import tomllib
from pathlib import Path

import bpy

from ..jobs.report import job_report
from ..net.redact import secret_forms
from ..providers.registry import PROVIDERS, provider_class
from .engine import engine
from .preflight import provider_config

_MANIFEST = Path(__file__).resolve().parents[1] / "blender_manifest.toml"


def about() -> str:
    """"Text to Texture 1.2.0 · Blender 4.3.2 · Linux x86_64"."""
    try:
        version = tomllib.loads(_MANIFEST.read_text(encoding="utf-8")).get("version", "?")
    except (OSError, ValueError):
        version = "?"
    return (f"Text to Texture {version} · Blender {bpy.app.version_string} · "
            f"{platform.system()} {platform.machine()}")


def all_secrets() -> list[str]:
    """Every configured key and secret, in every form: none may reach a report."""
    return secret_forms(v for pid in PROVIDERS for v in provider_config(pid).secrets())


def report_for(job_id: str) -> str | None:
    """The report text of a job of this session or the journal; None when there is no record."""
    eng = engine()
    job = eng.jobs.get(job_id) or eng.journal.load(job_id)
    if job is None:
        return None
    cls = provider_class(job.provider)
    base = ""
    if cls is not None and not cls.offline:
        base = provider_config(job.provider).api_base or cls.default_base
    return job_report(eng.journal, job, base_url=base, about=about(), secrets=all_secrets())
