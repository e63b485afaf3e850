"""A prompt per object: placeholders filled from the object, and prompts files for pipelines.

Pure Python (no bpy): the Blender side gathers an object's name, collections and materials and
calls `fill`; the command line reads `--prompts FILE` with `read_prompts_file`.

Placeholders, written in a prompt as `{name}`, `{collection}`, `{material}`:

* ``{name}``: the object's name, made readable: Blender's duplicate suffix (".001") is dropped
  and underscores become spaces ("Old_Barrel.003" -> "Old Barrel").
* ``{collection}``: the collections the object is in, by name, sorted, joined with ", "; the
  scene's own top collection does not count.
* ``{material}``: the materials in the object's slots, in slot order, each once, joined with
  ", "; materials this extension made are left out (texturing again must not describe the last
  result).
* A placeholder with nothing to say becomes empty, and the commas and spaces around it are
  tidied away ("{material} crate" on an object without materials -> "crate").
* ``{{`` and ``}}`` are a literal brace. Any other ``{...}`` is refused with one line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDERS = ("name", "collection", "material")
HINT = "use {name}, {collection} or {material}; write {{ and }} for a literal brace"

# Custom properties on an object that override the panel's prompts for that object.
PROMPT_PROP = "t2t_prompt"
NEGATIVE_PROP = "t2t_negative_prompt"

_DUPLICATE = re.compile(r"\.\d{3,}$")


class PromptError(ValueError):
    """One line saying what is wrong with a prompt or a prompts file."""


def check_template(text: str) -> str:
    """"" when `text` only uses known placeholders, else one line saying what is wrong."""
    try:
        _parse(text)
    except PromptError as exc:
        return str(exc)
    return ""


def _parse(text: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pairs; raises PromptError on anything else."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise PromptError(f"A brace in the prompt is not closed: {HINT}") from None
    out: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parts:
        if field is None:
            out.append((literal, None))
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (
                f":{spec}" if spec else "") + "}"
            raise PromptError(f"Unknown placeholder {shown} in the prompt: {HINT}")
        out.append((literal, field))
    return out


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with its placeholders replaced from `values`, tidied; raises PromptError."""
    parts = _parse(template)
    if all(field is None for _, field in parts):  # a plain prompt is sent as written
        return "".join(literal for literal, _ in parts).strip()
    text = "".join(literal + (values.get(field, "") if field else "") for literal, field in parts)
    return tidy(text)


def tidy(text: str) -> str:
    """Collapse the spaces and empty comma items an empty placeholder leaves behind."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)  # ", ," -> ","
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r"\(\s*\)", "", text)
    return text.strip(" ,;")


def readable_name(name: str) -> str:
    """An object name as words: no duplicate suffix, underscores as spaces."""
    return re.sub(r"\s+", " ", _DUPLICATE.sub("", name).replace("_", " ")).strip() or name


def joined(names: list[str]) -> str:
    seen: list[str] = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return ", ".join(seen)


# ---- prompts files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectPrompt:
    """What a prompts file says for one object; "" means "not given" (the next source wins)."""

    prompt: str = ""
    negative_prompt: str = ""


def read_prompts_file(path: str | Path) -> dict[str, ObjectPrompt]:
    """Object name -> its prompts, from a JSON or CSV file; raises PromptError with one line.

    JSON: ``{"Crate": "oak planks", "Barrel": {"prompt": "…", "negative_prompt": "…"}}``.
    CSV: rows ``object,prompt[,negative_prompt]``; a first row naming the columns (``object``
    or ``name``, ``prompt``, ``negative_prompt`` or ``negative``) is optional.
    """
    path = Path(path)
    where = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PromptError(f"--prompts: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PromptError(f"--prompts: cannot read {path}: {reason}") from None
    is_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{"))
    entries = _from_json(text, where) if is_json else _from_csv(text, where)
    if not entries:
        raise PromptError(f"--prompts: {where} names no objects")
    for name, entry in entries.items():
        for value in (entry.prompt, entry.negative_prompt):
            problem = check_template(value)
            if problem:
                raise PromptError(f"--prompts: {where}, '{name}': {problem}")
    return entries


def _from_json(text: str, where: str) -> dict[str, ObjectPrompt]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptError(f"--prompts: {where} is not valid JSON (line {exc.lineno}: "
                          f"{exc.msg})") from None
    if not isinstance(data, dict):
        raise PromptError(f"--prompts: {where} must be a JSON object mapping object names to "
                          "prompts")
    out: dict[str, ObjectPrompt] = {}
    for name, value in data.items():
        if isinstance(value, str):
            out[name] = ObjectPrompt(value.strip())
        elif isinstance(value, dict) and set(value) <= {"prompt", "negative_prompt"} and all(
                isinstance(v, str) for v in value.values()):
            out[name] = ObjectPrompt(value.get("prompt", "").strip(),
                                     value.get("negative_prompt", "").strip())
        else:
            raise PromptError(f"--prompts: {where}, '{name}': give a prompt, or "
                              '{"prompt": "…", "negative_prompt": "…"}')
    return out


_HEADERS = {"object": 0, "name": 0, "prompt": 1, "negative_prompt": 2, "negative": 2}


def _from_csv(text: str, where: str) -> dict[str, ObjectPrompt]:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise PromptError(f"--prompts: {where} is not valid CSV: {exc}") from None
    columns = (0, 1, 2)
    out: dict[str, ObjectPrompt] = {}
    for line, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not out and line == _first_row(rows) and cells[0].lower() in ("object", "name"):
            known = [_HEADERS.get(c.lower()) for c in cells]
            if 1 not in known:
                raise PromptError(f"--prompts: {where}, line {line}: the header needs a "
                                  "'prompt' column")
            columns = tuple(known.index(i) if i in known else -1 for i in (0, 1, 2))  # type: ignore[assignment]
            continue
        get = [cells[i] if 0 <= i < len(cells) else "" for i in columns]
        if len(cells) < 2 or not get[0]:
            raise PromptError(f"--prompts: {where}, line {line}: expected "
                              "object,prompt[,negative_prompt]")
        if get[0] in out:
            raise PromptError(f"--prompts: {where}, line {line}: '{get[0]}' is listed twice")
        out[get[0]] = ObjectPrompt(get[1], get[2])
    return out


def _first_row(rows: list[list[str]]) -> int:
    for line, row in enumerate(rows, start=1):
        if any(c.strip() for c in row):
            return line
    return 0
