"""Per-object prompt templates, prompts files and batch prices: pure Python, no Blender."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from text_to_texture.jobs.prompts import (
    ObjectPrompt,
    PromptError,
    check_template,
    fill,
    read_prompts_file,
    readable_name,
)
from text_to_texture.providers.base import Provider, TextureRequest
from text_to_texture.providers.meshy import MeshyProvider
from text_to_texture.providers.pricing import describe, price_batch


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("{name}, weathered bronze", {"name": "Crate"}, "Crate, weathered bronze"),
        ("{material} crate, {collection}", {}, "crate"),
        ("{name} ({material})", {"name": "Pot"}, "Pot"),
        ("a {{b}} {name}", {"name": "c"}, "a {b} c"),
        ("plain {{braces}} only", {}, "plain {braces} only"),
        ("  spaced   out  ", {}, "spaced   out"),  # a plain prompt is sent as written
    ],
)
def test_fill(template: str, values: dict[str, str], expected: str) -> None:
    assert fill(template, values) == expected


@pytest.mark.parametrize("bad", ["{foo}", "a }", "{name", "{name:>3}", "{name!r}", "{0}"])
def test_only_known_placeholders(bad: str) -> None:
    assert check_template(bad)
    with pytest.raises(PromptError):
        fill(bad, {"name": "x"})


def test_readable_name() -> None:
    assert readable_name("Old_Barrel.003") == "Old Barrel"
    assert readable_name("SM_Door_01") == "SM Door 01"
    assert readable_name("v1.5") == "v1.5"


def test_prompts_files(tmp_path: Path) -> None:
    j = tmp_path / "p.json"
    j.write_text('{"A": "oak", "B": {"negative_prompt": "rust"}}')
    assert read_prompts_file(j) == {"A": ObjectPrompt("oak"), "B": ObjectPrompt("", "rust")}
    c = tmp_path / "p.csv"
    c.write_text("\ufeffname,negative,prompt\n# a comment\nA,moss,\"stone, grey\"\n\nB,,pine\n",
                 encoding="utf-8")
    assert read_prompts_file(c) == {"A": ObjectPrompt("stone, grey", "moss"),
                                    "B": ObjectPrompt("pine", "")}
    bare = tmp_path / "bare.txt"
    bare.write_text("A,oak\n")
    assert read_prompts_file(bare) == {"A": ObjectPrompt("oak")}
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    with pytest.raises(PromptError, match="names no objects"):
        read_prompts_file(empty)


class Quoting(Provider):
    id = "Q"
    label = "Quoting"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def quote(self, request: TextureRequest, cancel: Any = None) -> dict | None:
        self.asked.append(request.prompt)
        if request.prompt == "boom":
            raise RuntimeError("service down")
        if request.prompt == "none":
            return None
        return {"cost_credits": 5 if request.resolution == 1024 else 8,
                "available_credits": 12}


def req(prompt: str, resolution: int = 1024, job: str = "j") -> TextureRequest:
    return TextureRequest(job_id=job, prompt=prompt, resolution=resolution, file_stem=job)


def test_a_batch_is_the_sum_of_its_quotes_each_distinct_request_asked_once() -> None:
    p = Quoting()
    price = price_batch(p, [req("a", job="1"), req("a", job="2"), req("a", 2048, "3")])
    assert (price.total, price.priced, price.asked, p.asked) == (18, 3, 2, ["a", "a"])
    assert describe(price) == "≈ 18 credits for 3 objects; 12 available — not enough"


def test_unknown_prices_are_said_not_guessed() -> None:
    p = Quoting()
    price = price_batch(p, [req("a"), req("none"), req("boom")])
    assert price.each == [5.0, None, None]
    assert describe(price).startswith("≈ 5 credits for 1 of 3 objects (no price for 2)")
    assert price_batch(p, [req("none")]).priced == 0
    assert describe(price_batch(p, [req("none")])) == "No price from Quoting for 1 object"


def test_meshy_publishes_its_price_and_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    p = MeshyProvider()
    monkeypatch.setattr(p, "quote", lambda *a, **k: pytest.fail("Meshy was asked"))
    price = price_batch(p, [req("a", 1024), req("b", 4096)])
    assert describe(price) == "≈ 20 credits for 2 objects (10 each)"
    assert p.price_per_task(TextureRequest("j", "a", options={"ai_model": "meshy-5"})) is None
    assert p.price_per_task(TextureRequest("j", "a", options={"texture_model": "meshy-7"}))
