"""`blender -b scene.blend --command text_to_texture …`: the headless batch for pipelines.

A thin layer over `blender.batch.BatchRun` (the same jobs the button starts): it parses
arguments, writes them onto the scene's settings, picks the objects, drives the batch to the
end while printing one line per job state change, saves if asked and turns the outcome into
an exit code a pipeline can act on.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

from .blender import quotes, recall
from .blender.batch import BatchRun, plan
from .blender.drive import run_until
from .blender.engine import engine
from .blender.prompts import own_prompt
from .blender.props import UV_POLICIES, settings_of
from .blender.report import all_secrets, report_for
from .jobs.job import State
from .jobs.prompts import ObjectPrompt, PromptError, read_prompts_file
from .net.redact import redact
from .providers.registry import CHOICES, provider_class

COMMAND = "text_to_texture"
PREFIX = "[t2t]"
# Exit codes: every job applied / some job failed or was canceled / nothing could start.
OK, FAILED, USAGE = 0, 1, 2
# After a timeout, how long canceled jobs get to reach a terminal state before we give up.
CANCEL_GRACE_S = 15.0

DESCRIPTION = """\
Texture meshes of a .blend from a text prompt, without a window: the same jobs as the
sidebar's "Texture N selected" button. Options that are not given keep the values saved in
the scene's Text to Texture settings; the ones given are written into those settings.
"""

EPILOG = """\
objects:
  Without --objects/--collection, the objects selected in the saved file are textured (or,
  with --prompts, the objects the file names).
  --collection takes every mesh in the collection and its child collections. Non-meshes and
  meshes without faces that are named explicitly or selected are skipped with one line each.

prompts per object:
  A prompt may name the object: {name} (its name, "Old_Barrel.003" -> "Old Barrel"),
  {collection} (its collections, sorted, comma-separated), {material} (its materials, in slot
  order, leaving out ones this extension made); an empty one is tidied away; {{ and }} are
  literal braces. An object's custom properties t2t_prompt / t2t_negative_prompt win over
  --prompt / --negative-prompt, and --prompts FILE wins over both:
    JSON  {"Crate": "oak planks", "Barrel": {"prompt": "{name}, iron", "negative_prompt": "rust"}}
    CSV   object,prompt,negative_prompt   (one object a line; the header line is optional)
  Every object a prompts file names must exist in the scene.

before spending:
  --dry-run plans every job (objects, prompts, checks) and prints each object's prompt and
  the price of the whole batch, then stops: no job is sent and nothing is saved.

farms:
  --chunk K/N textures the K-th of N equal slices of the chosen objects (in order), so N
  machines can share one file, each saving its own --output. --jobs-at-once N caps this run's
  jobs in flight at the provider (it sets <PROVIDER>_JOBS_AT_ONCE): the plan's limit is shared
  by every machine of the farm. farm/flamenco/ has a Flamenco job type that does both.

saving:
  --output PATH saves the result as a new .blend (texture maps stay in //textures/ beside the
  source file, or the folder set in the preferences; paths are remapped); --save saves the
  opened file in place. With neither, NOTHING IS SAVED: the maps are written but the materials
  are lost when Blender exits. The file is saved even when some jobs failed.

output (stdout):
  [t2t] 'OBJECT': STATE PERCENT% - MESSAGE   one line whenever a job changes state
  [t2t] 'OBJECT': MESSAGE                     per job that did not apply, at the end
  [t2t] Textured N of M object(s) with ...    the summary (naming the first failed objects)
  [t2t] Saved PATH / Not saved (...)          what happened to the file
  [t2t] | ...                                 with --report: each job's report, no keys

exit status:
  0  every job was applied
  1  a job failed, was canceled or timed out, or saving failed
  2  bad arguments, or nothing could start (no objects, no prompt, provider unavailable
     or not configured)

keys and limits:
  API keys come from the add-on preferences or the environment (MESHY_API_KEY, TRIVERSE_API_KEY,
  DRESSX_API_KEY, SCENARIO_API_KEY/SCENARIO_API_SECRET, ...); they are never printed. How many
  jobs of a provider run at once is its "Jobs at once" preference or MESHY_JOBS_AT_ONCE,
  TRIVERSE_JOBS_AT_ONCE, ... (Meshy: your plan's unfinished tasks, 10 on Pro); a full queue
  makes jobs wait, never fail. Cloud providers need network access: start Blender with
  --online-mode, e.g.
    blender --online-mode -b scene.blend --command text_to_texture --provider MESHY ...

example:
  blender -b scene.blend --command text_to_texture --provider PROCEDURAL \\
      --prompt "rusty iron" --collection Props --output textured.blend
"""


class CliError(Exception):
    """One line for stderr; the command ends with exit status 2."""


# ---- arguments -------------------------------------------------------------------------------


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _chunk(text: str) -> tuple[int, int]:
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("must be K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError("must be K/N with 1 <= K <= N, e.g. 2/4")
    return k, n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"blender -b FILE.blend --command {COMMAND}",
        usage=f"blender [--online-mode] -b FILE.blend --command {COMMAND} [--prompt TEXT]\n"
        "         [--provider ID] [--objects NAME [NAME ...]] [--collection NAME]\n"
        "         [--output PATH | --save] [--timeout SECONDS] [more options, see below]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to make")
    what.add_argument(
        "--provider", type=str.upper, choices=[pid for pid, _, _ in CHOICES],
        help="who makes the texture (default: the scene's setting)",
    )
    what.add_argument(
        "--prompt", help="what the surface should look like, e.g. \"rusty iron\" "
        "(required unless the scene already has a prompt)",
    )
    what.add_argument("--negative-prompt", metavar="TEXT",
                      help="what the texture should not have")
    what.add_argument("--prompts", metavar="FILE",
                      help="a prompt per object: JSON or CSV mapping object names to prompts "
                      "(see 'prompts per object' below)")
    what.add_argument("--seed", type=_seed, metavar="N",
                      help="same prompt and seed give the same result")
    what.add_argument("--resolution", choices=["1024", "2048", "4096"],
                      help="texture size in pixels")
    what.add_argument(
        "--pbr", action=argparse.BooleanOptionalAction, default=None,
        help="roughness, metallic and normal maps besides base color (--no-pbr: base color only)",
    )
    what.add_argument("--add-to-assets", action="store_true",
                      help="make each applied material an asset (catalog 'Text to Texture/"
                      "<provider>'); save the file to keep them")
    what.add_argument(
        "--uv-policy", type=str.upper, choices=[p for p, _, _ in UV_POLICIES],
        help="EXISTING_OR_UNWRAP: use the render UV map, unwrap into 'T2T_UV' if there is none; "
        "EXISTING_ONLY: skip objects without UVs; ALWAYS_NEW: always unwrap into 'T2T_UV'",
    )
    which = parser.add_argument_group("which objects (default: the selection saved in the file)")
    which.add_argument("--objects", nargs="+", metavar="NAME", default=[],
                       help="objects by name")
    which.add_argument("--collection", action="append", metavar="NAME", default=[],
                       help="every mesh in this collection and its children (repeatable)")
    out = parser.add_argument_group("saving (default: nothing is saved)")
    save = out.add_mutually_exclusive_group()
    save.add_argument("--output", metavar="PATH", help="save the result as a new .blend")
    save.add_argument("--save", action="store_true", help="save the opened .blend in place")
    parser.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS",
        help="cancel jobs still unfinished after this long (they count as failed)",
    )
    parser.add_argument(
        "--report", nargs="?", const="failed", choices=["failed", "all"],
        help="at the end, print the report of each job that did not apply ('all': of every "
        "job): what was sent and what the service answered, without keys — send it to "
        "support when a job fails in a way you cannot explain",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="print each object's prompt and the batch's price; send nothing")
    farm = parser.add_argument_group("farms")
    farm.add_argument("--chunk", type=_chunk, metavar="K/N",
                      help="texture only the K-th of N slices of the chosen objects")
    farm.add_argument("--jobs-at-once", type=_positive, metavar="N",
                      help="most jobs in flight at the provider during this run")
    return parser


# ---- the command -----------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    """The `--command text_to_texture` callback: Blender passes the arguments after the id."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) or a usage error argparse already printed (2)
        return exc.code if isinstance(exc.code, int) else USAGE
    try:
        with _window_context():
            return _run(args)
    except CliError as exc:
        print(f"{COMMAND}: error: {exc}", file=sys.stderr, flush=True)
        return USAGE
    except Exception:  # a bug: say so in one line, keep the traceback for the bug report
        print(f"{COMMAND}: internal error (please report):", file=sys.stderr)
        traceback.print_exc()
        return FAILED


@contextmanager
def _window_context() -> Iterator[None]:
    """`--command` runs with no window in the context (`--python` has one), so members such as
    `selected_objects`, which the UV unwrap relies on, are missing: lend it the file's window."""
    ctx = bpy.context
    windows = list(ctx.window_manager.windows) if ctx.window_manager else []
    if ctx.window is not None or not windows:
        yield
        return
    with ctx.temp_override(window=windows[0]):
        yield


def _run(args: argparse.Namespace) -> int:
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


# ---- registration ----------------------------------------------------------------------------

_handle: Any = None


def register() -> None:
    global _handle
    if _handle is None:
        _handle = bpy.utils.register_cli_command(COMMAND, main)


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
