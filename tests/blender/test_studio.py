"""Studio batches through the installed zip: a prompt per object, the price before spending,
`--prompts`, `--dry-run`, `--chunk` and `--jobs-at-once`, against the Meshy emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from t2t_testing import add_mesh, engine, installed, select, set_prompt

CREATE = r"^/openapi/v\d/(retexture|text-to-texture)$"


def cli(*argv: str) -> int:
    return installed("cli").main(list(argv))


def sent_prompts(emu: Any) -> dict[str, str]:
    """What each create request asked for, by the object name the test put in its prompt."""
    out = {}
    for rec in emu.recorded("POST", CREATE):
        body = rec.body or {}
        prompt = body.get("texture_prompt") or body.get("text_style_prompt") or ""
        out[prompt.split(",")[0]] = prompt
    return out


@pytest.fixture()
def props(blender):  # type: ignore[no-untyped-def]
    """Old_Crate.001 (material 'Oak') and Ball in collection Props; Lone outside it."""
    bpy = blender
    coll = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(coll)
    objs = {}
    for kind, name, x in (("cube", "Old_Crate.001", 0), ("sphere", "Ball", 3),
                          ("cylinder", "Lone", 6)):
        obj = add_mesh(kind, name, (x, 0, 0))
        if name != "Lone":
            coll.objects.link(obj)
            bpy.context.scene.collection.objects.unlink(obj)
        objs[name] = obj
    objs["Old_Crate.001"].data.materials.append(bpy.data.materials.new("Oak"))
    select(*objs.values())
    return objs


def test_each_object_is_sent_its_own_prompt(blender, props, meshy) -> None:
    bpy = blender
    props["Ball"]["t2t_prompt"] = "Ball, glazed ceramic {{shiny}}"
    props["Ball"]["t2t_negative_prompt"] = "cracks"
    set_prompt("{name}, {material} weathered, {collection}", provider="MESHY",
               negative_prompt="text")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    assert sent_prompts(meshy) == {
        "Old Crate": "Old Crate, Oak weathered, Props",
        "Ball": "Ball, glazed ceramic {shiny}",  # the object's own prompt; braces written twice
        "Lone": "Lone, weathered",  # no material, no collection: tidied away
    }
    jobs = {j.object_name: j.request for j in engine().jobs.values()}
    assert jobs["Ball"].negative_prompt == "cracks"
    assert jobs["Lone"].negative_prompt == "text"
    recs = {r.object_name: r for r in bpy.context.scene.text_to_texture.jobs}
    assert recs["Lone"].prompt == "Lone, weathered"
    assert recs["Lone"].prompt_template == "{name}, {material} weathered, {collection}"
    assert recs["Ball"].prompt_template == ""  # the object's own prompt: nothing to recall


def test_a_prompt_too_long_once_filled_is_refused_before_anything_is_sent(
    blender, props, meshy
) -> None:
    bpy = blender
    props["Ball"].name = "B" * 60
    set_prompt("{name} " + "x" * 560, provider="MESHY")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    created = sent_prompts(meshy)
    assert len(created) == 2 and not any(p.startswith("BBB") for p in created)
    assert all(len(p) <= 600 for p in created.values())


def test_an_unknown_placeholder_stops_the_batch_with_one_line(
    blender, props, meshy, capsys
) -> None:
    bpy = blender
    set_prompt("{nmae}, oak", provider="MESHY")
    with pytest.raises(RuntimeError, match="Nothing was textured"):
        bpy.ops.text_to_texture.generate()
    out = capsys.readouterr().out
    assert out.count("Unknown placeholder {nmae} in the prompt: use {name}") == 1
    assert meshy.count() == 0


def test_the_selection_price_is_the_sum_of_meshy_published_prices(blender, props, meshy) -> None:
    bpy = blender
    quotes = installed("blender.quotes")
    set_prompt("oak", provider="MESHY")
    objects = list(props.values())
    assert quotes.request_quote(bpy.context.scene, objects) == ""
    assert quotes.shown(bpy.context.scene, objects) == "≈ 30 credits for 3 objects (10 each)"
    assert meshy.count() == 0  # a published price: nothing asked, nothing sent
    # The answer belongs to that selection and those settings only.
    assert quotes.shown(bpy.context.scene, objects[:1]) == quotes.PRICING
    bpy.context.scene.text_to_texture.meshy_texture_model = "meshy-n1"  # no published price
    assert quotes.request_quote(bpy.context.scene, objects) == ""
    assert quotes.wait(bpy.context.scene).startswith("No price from Meshy for 3 objects")


def test_the_panel_counts_objects_with_their_own_prompt(blender, props) -> None:
    count_own = installed("blender.prompts").count_own
    props["Ball"]["t2t_prompt"] = "glazed ceramic"
    props["Lone"]["t2t_prompt"] = "   "  # blank: not a prompt
    assert count_own(props.values()) == 1


# ---- the command line ------------------------------------------------------------------------


def test_cli_prompts_file_json_textures_the_objects_it_names(
    blender, props, meshy, capsys, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({
        "Ball": "Ball, red rubber",
        "Lone": {"prompt": "Lone, {collection} granite", "negative_prompt": "moss"},
    }))
    code = cli("--provider", "MESHY", "--prompt", "unused", "--prompts", str(prompts))
    out = capsys.readouterr().out
    assert code == 0, out
    assert sent_prompts(meshy) == {"Ball": "Ball, red rubber", "Lone": "Lone, granite"}
    jobs = {j.object_name: j.request for j in engine().jobs.values()}
    assert jobs["Lone"].negative_prompt == "moss"
    assert "Old_Crate.001" not in jobs  # only the objects the file names


def test_cli_prompts_file_csv_with_objects_given(
    blender, props, meshy, capsys, tmp_path: Path
) -> None:
    prompts = tmp_path / "p.csv"
    prompts.write_text("object,prompt,negative_prompt\nBall,\"Ball, cork, light\",\n")
    code = cli("--provider", "MESHY", "--prompt", "{name}, steel", "--prompts", str(prompts),
               "--objects", "Ball", "Lone")
    assert code == 0, capsys.readouterr().out
    assert sent_prompts(meshy) == {"Ball": "Ball, cork, light", "Lone": "Lone, steel"}


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ('{"Bal": "oak"}', "p.json",
         "--prompts p.json: no object named 'Bal' in scene 'Scene' (did you mean 'Ball'?)"),
        ('{"Ball": 3}', "p.json", "--prompts: p.json, 'Ball': give a prompt, or"),
        ('{"Ball": "oak"', "p.json", "--prompts: p.json is not valid JSON (line 1"),
        ("Ball\n", "p.csv", "--prompts: p.csv, line 1: expected object,prompt[,negative_prompt]"),
        ("Ball,oak\nBall,pine\n", "p.csv", "--prompts: p.csv, line 2: 'Ball' is listed twice"),
        ("Ball,{oak}\n", "p.csv", "--prompts: p.csv, 'Ball': Unknown placeholder {oak}"),
        (None, "missing.csv", "missing.csv does not exist"),
    ],
)
def test_a_bad_prompts_file_is_one_line_and_nothing_starts(
    blender, props, meshy, capsys, tmp_path: Path, content: str | None, name: str, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert cli("--provider", "MESHY", "--prompt", "oak", "--prompts", str(path)) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert meshy.count() == 0


def test_dry_run_prints_each_prompt_and_the_price_and_sends_nothing(
    blender, props, meshy, capsys
) -> None:
    bpy = blender
    code = cli("--provider", "MESHY", "--prompt", "{name}, bronze", "--dry-run")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[t2t] 'Old_Crate.001': \"Old Crate, bronze\" (10 credits)" in out
    assert "[t2t] 'Lone': \"Lone, bronze\" (10 credits)" in out
    assert ("[t2t] Dry run: 3 job(s) with Meshy: ≈ 30 credits for 3 objects (10 each)"
            in out)
    assert meshy.count("POST") == 0 and meshy.count() == 0  # no create route, nothing at all
    assert len(bpy.context.scene.text_to_texture.jobs) == 0
    assert all(o.active_material is None or o.active_material.name == "Oak"
               for o in props.values())


def test_dry_run_says_which_objects_would_be_skipped(blender, props, meshy, capsys) -> None:
    props["Ball"].name = "B" * 60
    code = cli("--provider", "MESHY", "--prompt", "{name} " + "x" * 560, "--dry-run")
    out = capsys.readouterr().out
    assert code == 0
    assert f"[t2t] Skipped '{'B' * 60}': Meshy takes a prompt of at most 600" in out
    assert "≈ 20 credits for 2 objects (10 each); 1 skipped" in out
    assert meshy.count() == 0


def test_chunks_split_the_objects_and_jobs_at_once_caps_the_run(
    blender, props, meshy, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set (to "", no value) so that monkeypatch removes what the CLI sets in os.environ.
    monkeypatch.setenv("MESHY_JOBS_AT_ONCE", "")
    code = cli("--provider", "MESHY", "--prompt", "{name}, oak", "--collection", "Props",
               "--objects", "Lone", "--chunk", "2/2", "--jobs-at-once", "1")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[t2t] Chunk 2/2: 2 object(s)" in out
    assert set(sent_prompts(meshy)) == {"Old Crate", "Ball"}  # Lone is the first slice
    assert engine().runner.limits["MESHY"] == 1
    import os
    assert os.environ["MESHY_JOBS_AT_ONCE"] == "1"
    # One job in flight at a time: each task was created after the one before had finished.
    tasks = sorted(meshy.tasks.values(), key=lambda t: t.created)
    assert tasks[1].created >= tasks[0].finished_at() - 0.05
