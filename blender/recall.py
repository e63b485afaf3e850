"""Recall and the asset library for a finished job, as the job list's buttons use them."""

from __future__ import annotations

from typing import Any

from ..jobs.job import Job
from ..providers.registry import label, provider_class
from . import assets
from .engine import engine
from .props import settings_of
from .surfaces import surface


def _job(job_id: str) -> Job | None:
    eng = engine()
    return eng.jobs.get(job_id) or eng.journal.load(job_id)


def recall(scene: Any, job_id: str) -> str:
    """Put a job's settings back into the panel: provider, prompts (as written in the panel
    when the job used them), seed, resolution, PBR and the provider's options. "" or why not."""
    job = _job(job_id)
    if job is None:
        return "That job is no longer in the journal"
    if provider_class(job.provider) is None:
        return f"{label(job.provider)} is not available in this version"
    settings = settings_of(scene)
    rec = engine().record(job_id)
    req = job.request
    settings.provider = job.provider
    settings.prompt = (rec.prompt_template if rec is not None and rec.prompt_template
                       else req.prompt)
    settings.negative_prompt = req.negative_prompt
    settings.seed = max(0, int(req.seed))
    size = str(req.resolution)
    items = {i.identifier for i in settings.bl_rna.properties["resolution"].enum_items}
    settings.resolution = size if size in items else settings.resolution
    settings.enable_pbr = bool(req.enable_pbr)
    surface(job.provider).recall(settings, dict(req.options or {}))
    return ""


def add_to_assets(job_id: str, write_catalog: bool = True) -> str:
    """Make a job's material an asset; one line saying where it went, or why not ("!…")."""
    rec = engine().record(job_id)
    if rec is None or rec.material is None:
        return "!That job has no material (it is not applied, or the material was removed)"
    problem = assets.mark(rec.material, rec.prompt, rec.provider,
                          write_catalog=write_catalog)
    if problem:
        return "!" + problem
    return f"'{rec.material.name}' is an asset in {assets.catalog_path(rec.provider)}"
