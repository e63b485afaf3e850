"""The headless batch behind `blender -b … --command text_to_texture` (parsed by `cli.py`).

A thin layer over `batch.BatchRun` (the same jobs the button starts): it writes the arguments
onto the scene's settings, picks the objects, drives the batch to the end while printing one line
per job state change, saves if asked and turns the outcome into an exit code a pipeline can act
on.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

from ..jobs.job import State
from ..jobs.prompts import ObjectPrompt, PromptError, read_prompts_file
from ..net.redact import redact
from ..providers.registry import provider_class
from . import quotes, recall
from .batch import BatchRun, plan
from .drive import run_until
from .engine import engine
from .prompts import own_prompt
from .props import settings_of
from .report import all_secrets, report_for

PREFIX = "[t2t]"
# Exit codes: every job applied / some job failed or was canceled / nothing could start.
OK, FAILED, USAGE = 0, 1, 2
# After a timeout, how long canceled jobs get to reach a terminal state before we give up.
CANCEL_GRACE_S = 15.0


class CliError(Exception):
    """One line for stderr; the command ends with exit status 2."""


@contextmanager
def window_context() -> Iterator[None]:
    """`--command` runs with no window in the context (`--python` has one), so members such as
    `selected_objects`, which the UV unwrap relies on, are missing: lend it the file's window."""
    ctx = bpy.context
    windows = list(ctx.window_manager.windows) if ctx.window_manager else []
    if ctx.window is not None or not windows:
        yield
        return
    with ctx.temp_override(window=windows[0]):
        yield


def run_batch(args: argparse.Namespace) -> int:
    """Run the batch the parsed arguments describe; the exit code (`OK`, `FAILED`)."""
    scene = bpy.context.scene
    assert scene is not None  # a file is open
    settings = settings_of(scene)
    _apply_settings(settings, args)
    prompts = _read_prompts(args.prompts, scene)
    names = list(args.objects) or ([] if args.collection else list(prompts or {}))
    objects = select_objects(scene, names, args.collection)
    if not settings.prompt.strip() and not any(
            own_prompt(o) or (prompts and prompts.get(o.name, ObjectPrompt()).prompt)
            for o in objects):
        raise CliError("no prompt: pass --prompt \"…\" (the scene has none saved)")
    output = _output_path(args)
    out = _Printer()
    if args.jobs_at_once:
        _cap_jobs(settings.provider, args.jobs_at_once)
    if args.chunk:
        objects = _slice(objects, *args.chunk)
        out.line(f"Chunk {args.chunk[0]}/{args.chunk[1]}: {len(objects)} object(s)")
        if not objects:
            out.line("Nothing to texture in this chunk")
            if args.dry_run or (output is None and not args.save):
                return OK
            return OK if _save(output, out) else FAILED
    if args.dry_run:
        return _dry_run(scene, objects, prompts, out)

    run = BatchRun(scene, objects, prompts)
    for line in run.batch.skipped:
        out.line(line)
    if not run.job_ids:
        cls = provider_class(settings.provider)
        if cls is not None and not cls.offline and not bpy.app.online_access:
            out.line("Start Blender with --online-mode to allow network access for this run")
        raise CliError("nothing was textured")

    states = _drive(run, args.timeout, out)
    for _level, line in run.report_lines():
        if line not in run.batch.skipped:
            out.line(line)
    if args.report:
        _print_reports(run, args.report == "all", out)
    if args.add_to_assets:
        for job_id, state in zip(run.job_ids, states):
            if state is State.APPLIED:
                # The catalog file is written when the file is saved, beside what is saved
                # (with --output: the copy, not the source).
                out.line(recall.add_to_assets(job_id, bool(args.save)).lstrip("!"))

    code = OK if all(s is State.APPLIED for s in states) else FAILED
    if output is None and not args.save:
        out.line("Not saved (pass --output PATH or --save to keep the result)")
        return code
    return code if _save(output, out) else FAILED


def _read_prompts(path: str | None, scene: bpy.types.Scene) -> dict[str, ObjectPrompt] | None:
    """The prompts file, every object it names checked to exist before anything starts."""
    if path is None:
        return None
    try:
        prompts = read_prompts_file(path)
    except PromptError as exc:
        raise CliError(str(exc)) from None
    in_scene = {o.name for o in scene.objects}
    for name in prompts:
        if name not in in_scene:
            raise CliError(f"--prompts {Path(path).name}: "
                           + _not_found("object", name, in_scene, scene))
    return prompts


def _slice(objects: list[bpy.types.Object], k: int, n: int) -> list[bpy.types.Object]:
    """The K-th of N contiguous, near-equal slices (the same objects on every machine)."""
    return objects[(k - 1) * len(objects) // n: k * len(objects) // n]


def _cap_jobs(provider_id: str, count: int) -> None:
    """This run's jobs in flight at the provider: the runner's limit, and the environment
    variable the preferences' "Jobs at once" yields to."""
    os.environ[f"{provider_id}_JOBS_AT_ONCE"] = str(count)
    engine().runner.limits[provider_id] = count


def _dry_run(scene: bpy.types.Scene, objects: list[bpy.types.Object],
             prompts: dict[str, ObjectPrompt] | None, out: _Printer) -> int:
    """Plan and price the batch exactly as a real run would, and send nothing."""
    planned = plan(scene, objects, prompts, folder=False)
    for line in planned.skipped:
        out.line(line)
    if planned.ready is None or not planned.jobs:
        raise CliError("nothing would be textured")
    price = quotes.price_plan(planned)
    each = price.each if not isinstance(price, str) else [None] * len(planned.jobs)
    for item, cost in zip(planned.jobs, each):
        unit = getattr(price, "unit", "credits")
        cost_text = f" ({cost:g} {unit})" if cost is not None and not getattr(
            price, "offline", False) else ""
        neg = (f" / not: \"{item.request.negative_prompt}\""
               if item.request.negative_prompt else "")
        out.line(f"'{item.obj.name}': \"{item.request.prompt}\"{neg}{cost_text}")
    who = type(planned.ready.provider).label
    out.line(f"Dry run: {len(planned.jobs)} job(s) with {who}: {quotes.line(planned, price)}")
    out.line("Nothing was sent and nothing was saved")
    return OK


def _apply_settings(settings: Any, args: argparse.Namespace) -> None:
    """Write the given options onto the scene's settings, which is what the engine reads."""
    for attr, value in (
        ("provider", args.provider),
        ("prompt", args.prompt),
        ("negative_prompt", args.negative_prompt),
        ("seed", args.seed),
        ("resolution", args.resolution),
        ("enable_pbr", args.pbr),
        ("uv_policy", args.uv_policy),
    ):
        if value is not None:
            setattr(settings, attr, value)


def select_objects(
    scene: bpy.types.Scene, names: Iterable[str], collections: Iterable[str]
) -> list[bpy.types.Object]:
    """The objects to texture, in order and without repeats; raises CliError when none are."""
    names, collections = list(names), list(collections)
    in_scene = {o.name: o for o in scene.objects}
    chosen: dict[str, bpy.types.Object] = {}
    for name in names:
        obj = in_scene.get(name)
        if obj is None:
            raise CliError(_not_found("object", name, in_scene, scene))
        chosen.setdefault(obj.name, obj)
    scene_colls = {c.name: c for c in scene.collection.children_recursive}
    scene_colls[scene.collection.name] = scene.collection
    for name in collections:
        coll = scene_colls.get(name)
        if coll is None:
            raise CliError(_not_found("collection", name, scene_colls, scene))
        meshes = [o for o in coll.all_objects if o.type == "MESH" and o.name in in_scene]
        if not meshes:
            raise CliError(f"collection '{name}' has no mesh objects")
        for obj in meshes:
            chosen.setdefault(obj.name, obj)
    if names or collections:
        return list(chosen.values())
    layer = bpy.context.view_layer or scene.view_layers[0]
    selected = [o for o in scene.objects if o.select_get(view_layer=layer)]
    if not selected:
        where = Path(bpy.data.filepath).name or "the file"
        raise CliError(f"no objects are selected in {where}: pass --objects NAME … "
                       "or --collection NAME")
    return selected


def _not_found(kind: str, name: str, known: Iterable[str], scene: bpy.types.Scene) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"no {kind} named '{name}' in scene '{scene.name}'{hint}"


def _output_path(args: argparse.Namespace) -> Path | None:
    """Check where the result goes before any job starts (a paid job must not be wasted)."""
    if args.save:
        if not bpy.data.filepath:
            raise CliError("--save needs a .blend opened from disk; use --output PATH")
        if not os.access(bpy.data.filepath, os.W_OK):
            raise CliError(f"cannot write {bpy.data.filepath}; use --output PATH")
        return None
    if args.output is None:
        return None
    raw = args.output
    path = Path(bpy.path.abspath(raw) if raw.startswith("//") else raw).expanduser().absolute()
    if path.is_dir():
        raise CliError(f"--output {raw} is a folder; give a file name such as out.blend")
    if not path.parent.is_dir():
        raise CliError(f"--output: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise CliError(f"--output: cannot write into {path.parent}")
    return path


def _drive(run: BatchRun, timeout: float | None, out: _Printer) -> list[State]:
    """Tick the batch to the end (cancelling at the timeout); print each state change."""
    seen: dict[str, State] = {}
    out.changes(run.job_ids, seen)
    try:
        if not run_until(lambda: not run.unfinished(), timeout=timeout,
                         each=lambda: out.changes(run.job_ids, seen)):
            out.line(f"Timed out after {timeout:g} s: canceling the unfinished jobs")
            _cancel(run, out, seen)
    except KeyboardInterrupt:
        out.line("Interrupted: canceling the unfinished jobs")
        _cancel(run, out, seen)
    out.changes(run.job_ids, seen)
    jobs = engine().jobs
    return [jobs[i].state if i in jobs else State.FAILED for i in run.job_ids]


def _print_reports(run: BatchRun, every: bool, out: _Printer) -> None:
    """Each job's report (jobs/report.py), every line prefixed "[t2t] | "."""
    jobs = engine().jobs
    for job_id in run.job_ids:
        job = jobs.get(job_id)
        if job is None or (job.state is State.APPLIED and not every):
            continue
        text = report_for(job_id)
        if text is None:
            continue
        out.line(f"--- report of '{job.object_name}' (job {job_id}) ---")
        for line in text.splitlines():
            out.line(f"| {line}")


def _cancel(run: BatchRun, out: _Printer, seen: dict[str, State]) -> None:
    run.cancel()
    run_until(lambda: not run.unfinished(), timeout=CANCEL_GRACE_S,
              each=lambda: out.changes(run.job_ids, seen))
    jobs = engine().jobs
    left = [jobs[i] for i in run.job_ids if i in jobs and not jobs[i].state.terminal]
    for job in left:
        out.line(f"'{job.object_name}' is still {job.state.value}; it stays in the journal and "
                 "resumes when the saved file is opened again")


def _save(output: Path | None, out: _Printer) -> bool:
    try:
        if output is None:
            bpy.ops.wm.save_mainfile()
            out.line(f"Saved {bpy.data.filepath}")
        else:
            # copy=True: the session keeps its own file; relative paths are remapped.
            bpy.ops.wm.save_as_mainfile(filepath=str(output), copy=True)
            out.line(f"Saved {output}")
    except RuntimeError as exc:
        out.line(f"Could not save: {str(exc).strip().splitlines()[-1]}")
        return False
    return True


class _Printer:
    """Everything the command says goes through here: prefixed, flushed, keys blanked out."""

    def __init__(self) -> None:
        self.secrets = all_secrets()

    def line(self, text: str) -> None:
        print(f"{PREFIX} {redact(text, self.secrets)}", flush=True)

    def changes(self, job_ids: Iterable[str], seen: dict[str, State]) -> None:
        jobs = engine().jobs
        for job_id in job_ids:
            job = jobs.get(job_id)
            if job is None or seen.get(job_id) is job.state:
                continue
            seen[job_id] = job.state
            self.line(f"'{job.object_name}': {job.state.value} {round(job.progress * 100)}% - "
                      f"{job.message}")
