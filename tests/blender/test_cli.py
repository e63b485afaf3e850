"""The headless batch (`blender -b FILE --command text_to_texture …`) through the installed zip.

The command's callback is called directly with an argv list, as Blender calls it; the real
application runs it end to end in tests/gui/cli_check.sh.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from t2t_testing import add_mesh, installed, select, set_prompt

KEY = "msy_emulator_SECRET_0123456789"  # the key the `meshy` fixture (conftest) sets
PROGRESS = re.compile(r"^\[t2t\] '(?P<name>.+)': (?P<state>[a-z]+) (?P<pct>\d+)% - (?P<msg>.*)$")


def cli(*argv: str) -> int:
    return installed("cli").main(list(argv))


def progress(out: str) -> dict[str, list[tuple[str, int]]]:
    """(state, percent) lines per object, in the order printed."""
    per: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for line in out.splitlines():
        m = PROGRESS.match(line)
        if m:
            per[m["name"]].append((m["state"], int(m["pct"])))
    return dict(per)


def assert_one_line_per_change(per: dict[str, list[tuple[str, int]]], final: str) -> None:
    for name, seq in per.items():
        states = [s for s, _ in seq]
        assert states[0] == "queued", (name, states)
        assert states[-1] == final, (name, states)
        assert all(a != b for a, b in itertools.pairwise(states)), (name, states)  # no repeats
    if final == "applied":
        assert all(seq[-1][1] == 100 for seq in per.values())


def materials(bpy: Any) -> dict[str, str]:
    return {o.name: o.active_material.name for o in bpy.data.objects if o.active_material}


@pytest.fixture()
def scene(blender):  # type: ignore[no-untyped-def]
    """Crate and Ball in collection Props (Pebble in its child Props/Small, a lamp beside them),
    Lone outside it; Crate is selected. No prompt is saved."""
    bpy = blender
    props = bpy.data.collections.new("Props")
    small = bpy.data.collections.new("Small")
    bpy.context.scene.collection.children.link(props)
    props.children.link(small)
    objs = {}
    for kind, name, coll, x in (("cube", "Crate", props, 0), ("sphere", "Ball", props, 3),
                                ("plane", "Pebble", small, 6), ("cylinder", "Lone", None, 9)):
        obj = add_mesh(kind, name, (x, 0, 0))
        if coll is not None:
            coll.objects.link(obj)
            bpy.context.scene.collection.objects.unlink(obj)
        objs[name] = obj
    lamp = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT"))
    props.objects.link(lamp)
    select(objs["Crate"])
    return objs


def test_the_command_is_registered_and_explains_itself(blender, capsys) -> None:
    assert installed("cli")._handle is not None
    assert cli("--help") == 0
    out = capsys.readouterr().out
    for text in ("--provider", "--objects", "--collection", "--output", "--save", "--timeout",
                 "--no-pbr", "NOTHING IS SAVED", "exit status", "--online-mode"):
        assert text in out, text


def test_the_saved_selection_is_the_default(blender, scene, capsys) -> None:
    bpy = blender
    assert cli("--prompt", "oak", "--resolution", "1024") == 0
    out = capsys.readouterr().out
    assert set(progress(out)) == {"Crate"}
    assert_one_line_per_change(progress(out), "applied")
    assert "[t2t] Textured 1 of 1 object(s) with Offline (procedural)" in out
    assert "[t2t] Not saved (pass --output PATH or --save to keep the result)" in out
    assert set(materials(bpy)) == {"Crate"}
    settings = bpy.context.scene.text_to_texture
    assert (settings.prompt, settings.resolution) == ("oak", "1024")  # written into the scene


def test_objects_by_name_and_by_collection(blender, scene, capsys) -> None:
    bpy = blender
    code = cli("--provider", "procedural", "--prompt", "rusty iron", "--seed", "3", "--no-pbr",
               "--objects", "Lone", "--collection", "Props")
    out = capsys.readouterr().out
    assert code == 0, out
    per = progress(out)
    assert set(per) == {"Lone", "Ball", "Crate", "Pebble"}
    assert_one_line_per_change(per, "applied")
    assert "Lamp" not in out  # a collection's non-meshes are not objects to texture
    assert set(materials(bpy)) == {"Lone", "Ball", "Crate", "Pebble"}
    settings = bpy.context.scene.text_to_texture
    assert (settings.seed, settings.enable_pbr) == (3, False)
    crate = bpy.data.objects["Crate"].active_material.node_tree
    bsdf = next(n for n in crate.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Base Color"].links and not bsdf.inputs["Roughness"].links


def test_a_named_non_mesh_is_skipped_with_one_line(blender, scene, capsys) -> None:
    assert cli("--prompt", "oak", "--objects", "Lamp", "Crate") == 0
    out = capsys.readouterr().out
    assert out.count("Skipped 'Lamp': not a mesh (light)") == 1
    assert set(progress(out)) == {"Crate"}


def test_output_saves_a_new_file_and_leaves_the_source_alone(
    blender, scene, capsys, tmp_path: Path
) -> None:
    bpy = blender
    src = tmp_path / "shots" / "scene.blend"
    src.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = out_dir / "textured.blend"

    assert cli("--prompt", "red brick", "--collection", "Small", "--output", str(result)) == 0
    out = capsys.readouterr().out
    assert f"[t2t] Saved {result}" in out
    assert bpy.data.filepath == str(src)  # the session still has the source open

    bpy.ops.wm.open_mainfile(filepath=str(result))
    assert set(materials(bpy)) == {"Pebble"}
    mat = bpy.data.objects["Pebble"].active_material
    images = [n.image for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    assert images and all(Path(bpy.path.abspath(i.filepath)).is_file() for i in images)
    assert bpy.context.scene.text_to_texture.jobs[0].state == "applied"
    bpy.ops.wm.open_mainfile(filepath=str(src))
    assert materials(bpy) == {}


def test_save_writes_the_opened_file_in_place(blender, scene, capsys, tmp_path: Path) -> None:
    bpy = blender
    src = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    set_prompt("polished gold")
    bpy.ops.wm.save_mainfile()

    assert cli("--objects", "Ball", "--save") == 0  # the prompt saved in the scene is used
    assert f"[t2t] Saved {src}" in capsys.readouterr().out
    bpy.ops.wm.open_mainfile(filepath=str(src))
    assert set(materials(bpy)) == {"Ball"}
    assert bpy.data.objects["Ball"].active_material.name.startswith("T2T Ball")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("--provider NOPE --prompt oak", "invalid choice: 'NOPE'"),
        ("--prompt oak --seed -1", "must be 0 or more"),
        ("--prompt oak --timeout 0", "must be more than 0"),
        ("--prompt oak --save --output x.blend", "not allowed with argument"),
        ("--prompt oak --objects", "expected at least one argument"),
        ("--prompt oak --frobnicate", "unrecognized arguments"),
        ("--prompt ''", "no prompt: pass --prompt"),
        ("--prompt oak --objects Crat",
         "no object named 'Crat' in scene 'Scene' (did you mean 'Crate'?)"),
        ("--prompt oak --collection Nope", "no collection named 'Nope'"),
        ("--prompt oak --save", "--save needs a .blend opened from disk"),
        ("--prompt oak --output /nonexistent-dir/x.blend",
         "the folder /nonexistent-dir does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    blender, scene, capsys, argv: str, message: str
) -> None:
    bpy = blender
    assert cli(*shlex.split(argv)) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert len(bpy.context.scene.text_to_texture.jobs) == 0  # nothing started
    assert materials(bpy) == {}


def test_nothing_selected_is_one_line_and_exit_2(blender, scene, capsys) -> None:
    select()
    assert cli("--prompt", "oak") == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "text_to_texture: error: no objects are selected in the file: pass --objects NAME … "
        "or --collection NAME"
    ]
    assert captured.out == ""


def test_only_unusable_objects_is_exit_2(blender, scene, capsys) -> None:
    bpy = blender
    hollow = bpy.data.objects.new("Hollow", bpy.data.meshes.new("nothing"))
    bpy.context.scene.collection.objects.link(hollow)
    assert cli("--prompt", "oak", "--objects", "Hollow", "Lamp") == 2
    captured = capsys.readouterr()
    assert "[t2t] Skipped 'Hollow': the mesh has no faces" in captured.out
    assert "[t2t] Skipped 'Lamp': not a mesh (light)" in captured.out
    assert "error: nothing was textured" in captured.err


# ---- a cloud provider: failures, timeouts, keys ----------------------------------------------


def test_a_cloud_batch_applies_and_never_prints_the_key(blender, scene, meshy, capsys) -> None:
    code = cli("--provider", "MESHY", "--prompt", "weathered bronze", "--collection", "Props")
    captured = capsys.readouterr()
    assert code == 0, captured.out
    per = progress(captured.out)
    assert set(per) == {"Crate", "Ball", "Pebble"}
    assert_one_line_per_change(per, "applied")
    assert any(s == "running" for seq in per.values() for s, _ in seq)
    assert "[t2t] Textured 3 of 3 object(s) with Meshy" in captured.out
    assert KEY not in captured.out + captured.err


def test_a_failed_job_exits_1_and_its_reason_is_printed_without_the_key(
    blender, scene, meshy, capsys, tmp_path: Path
) -> None:
    bpy = blender
    meshy.fail_tasks(f"The server is busy (request signed with {KEY})")  # a leaky service
    result = tmp_path / "partial.blend"
    code = cli("--provider", "MESHY", "--prompt", "oak", "--objects", "Crate",
               "--output", str(result))
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_per_change(progress(captured.out), "failed")
    assert "[t2t] Textured 0 of 1 object(s) with Meshy" in captured.out
    assert "The server is busy (request signed with ***)" in captured.out
    assert KEY not in captured.out + captured.err
    assert result.is_file()  # saved anyway: the record says why it failed
    assert bpy.data.objects["Crate"].active_material is None


def test_the_timeout_cancels_and_exits_1(blender, scene, meshy, capsys) -> None:
    bpy = blender
    meshy.job_seconds, meshy.pending_seconds = 30.0, 30.0  # waiting at Meshy: deleted
    assert cli("--provider", "MESHY", "--prompt", "oak", "--timeout", "1") == 1
    out = capsys.readouterr().out
    assert "[t2t] Timed out after 1 s: canceling the unfinished jobs" in out
    assert_one_line_per_change(progress(out), "canceled")
    assert len(meshy.recorded("DELETE")) == 1  # the remote job was canceled too
    assert bpy.context.scene.text_to_texture.jobs[0].state == "canceled"


def test_a_cloud_provider_that_cannot_start_is_exit_2(
    blender, scene, meshy, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    blender.context.preferences.system.use_online_access = False
    assert cli("--provider", "MESHY", "--prompt", "oak") == 2
    captured = capsys.readouterr()
    assert "Meshy needs online access" in captured.out
    assert "Start Blender with --online-mode" in captured.out
    assert meshy.count() == 0

    blender.context.preferences.system.use_online_access = True
    monkeypatch.delenv("MESHY_API_KEY")
    assert cli("--provider", "MESHY", "--prompt", "oak") == 2
    captured = capsys.readouterr()
    assert "error: nothing was textured" in captured.err
    assert meshy.count() == 0


def test_report_prints_each_failed_jobs_report_without_keys(blender, scene, meshy, capsys,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("MESHY_API_KEY", "msy_wrong_SECRET_key_9")
    assert cli("--provider", "MESHY", "--prompt", "oak", "--objects", "Crate", "Ball",
               "--report") == 1
    out = capsys.readouterr().out
    assert ("[t2t] Textured 0 of 2 object(s) with Meshy — 'Crate': Meshy rejected the API key"
            in out)
    for name in ("Crate", "Ball"):
        assert f"[t2t] --- report of '{name}' (job " in out
    report = [ln for ln in out.splitlines() if ln.startswith("[t2t] | ")]
    assert report[0] == "[t2t] | Text to Texture report — job " + report[0].split()[-1]
    assert any("POST /openapi/v2/retexture → HTTP 401" in ln for ln in report)
    assert "SECRET" not in out and "data:" not in out
