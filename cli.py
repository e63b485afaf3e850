"""`blender -b scene.blend --command text_to_texture …`: the headless batch for pipelines.

This module parses the arguments and registers the command; `blender/cli_batch.py` runs the
batch (the same jobs the button starts) and turns its outcome into an exit code.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import bpy

from .blender.cli_batch import FAILED, USAGE, CliError, run_batch, window_context
from .blender.props import UV_POLICIES
from .providers.registry import CHOICES

COMMAND = "text_to_texture"

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
        with window_context():
            return run_batch(args)
    except CliError as exc:
        print(f"{COMMAND}: error: {exc}", file=sys.stderr, flush=True)
        return USAGE
    except Exception:  # a bug: say so in one line, keep the traceback for the bug report
        print(f"{COMMAND}: internal error (please report):", file=sys.stderr)
        traceback.print_exc()
        return FAILED


# ---- registration ----------------------------------------------------------------------------

_handle: Any = None


def register() -> None:
    global _handle
    if _handle is None:
        # The stubs declare it as returning None; it returns the handle to unregister with.
        _handle = bpy.utils.register_cli_command(COMMAND, main)  # type: ignore[func-returns-value]


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
