"""View3D > Sidebar > Texture: prompt, options, the one button, and the job list.

Drawing only: nothing here changes data (Blender forbids writes in draw()).
"""

from __future__ import annotations

import time
from typing import Any

import bpy

from ..blender import connection, quotes
from ..blender.batch import count_busy, count_valid
from ..blender.engine import engine
from ..blender.preflight import online_blocker
from ..blender.prompts import count_own
from ..blender.props import T2T_JobRecord, T2T_SceneSettings
from ..blender.surfaces import surface
from ..jobs.job import State
from ..providers.registry import label

ACTIVE = tuple(state.value for state in State if not state.terminal)
ICONS = {
    "queued": "SORTTIME", "exporting": "EXPORT", "submitting": "URL", "running": "PLAY",
    "downloading": "IMPORT", "baking": "UV", "ready": "CHECKMARK", "applied": "CHECKMARK",
    "failed": "ERROR", "canceled": "CANCEL",
}

STATE_LABELS = {"downloading": "Fetching", "submitting": "Sending", "ready": "Applying"}


def _state_label(rec: T2T_JobRecord) -> str:
    if rec.provider == "PROCEDURAL" and rec.state in ("submitting", "running", "downloading"):
        return "Generating"  # nothing is sent or fetched: the maps are made here
    return STATE_LABELS.get(rec.state, rec.state.capitalize())


def _elapsed(rec: T2T_JobRecord) -> str:
    end = rec.finished or time.time()
    seconds = max(0, int(end - rec.created))
    return f"{seconds // 60}:{seconds % 60:02d}"


class T2T_UL_jobs(bpy.types.UIList):
    bl_idname = "T2T_UL_jobs"

    def filter_items(self, context, data, propname):  # type: ignore[no-untyped-def]
        """Newest first: the batch just started is at the top, earlier ones below."""
        n = len(getattr(data, propname))
        return [self.bitflag_filter_item] * n, list(range(n - 1, -1, -1))

    def draw_item(self, context, layout, data, item, icon, active_data, active_prop, index=0):  # type: ignore[no-untyped-def,override]
        split = layout.split(factor=0.4, align=True)
        name = item.object.name if item.object else f"{item.object_name} (deleted)"
        split.label(text=name, icon=ICONS.get(item.state, "DOT"))
        row = split.row(align=True)
        if item.state == "ready" and item.object is None:  # recovered: the artist picks where
            op = row.operator("text_to_texture.apply_to_active", icon="CHECKMARK")
            op.job_id = item.job_id
        elif item.state == "ready" and item.job_id in engine().parked:  # kept, not applied
            op = row.operator("text_to_texture.reapply", icon="CHECKMARK", text="Apply")
            op.job_id = item.job_id
        elif item.state in ACTIVE:
            label = _state_label(item)
            row.progress(factor=item.progress, type="BAR",
                         text=f"{label} {round(item.progress * 100)}%" if item.progress
                         else label)
            op = row.operator("text_to_texture.cancel_job", text="", icon="X", emboss=False)
            op.job_id = item.job_id
        else:
            row.label(text=item.state.capitalize())
            if item.state in ("failed", "canceled"):
                op = row.operator("text_to_texture.retry", text="", icon="FILE_REFRESH",
                                  emboss=False)
                op.job_id = item.job_id
            elif item.state == "applied":
                op = row.operator("text_to_texture.reapply", text="", icon="MATERIAL",
                                  emboss=False)
                op.job_id = item.job_id


class T2T_PT_texture(bpy.types.Panel):
    bl_idname = "T2T_PT_texture"
    bl_label = "Text to Texture"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Texture"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None  # Blender sets it for draw()
        settings = context.scene.text_to_texture
        layout.prop(settings, "provider", text="")
        blocker = online_blocker(settings.provider)
        if blocker:
            box = layout.box().column(align=True)
            for i, line in enumerate(_wrap(blocker, 38)):
                box.label(text=line, icon="INFO" if i == 0 else "BLANK1")
        elif connection.needs_check(settings.provider):
            _draw_connection(layout, settings.provider)
        col = layout.column(align=True)
        col.prop(settings, "prompt", text="", icon="TEXT", placeholder="e.g. weathered bronze")
        col.prop(settings, "negative_prompt", text="", icon="REMOVE", placeholder="Negative")
        selected = list(context.selected_objects or [])
        own = count_own(selected)
        if own:
            col.label(text=f"{own} of {len(selected)} selected have their own prompt",
                      icon="OBJECT_DATA")

        opts = layout.column(align=True)
        opts.use_property_split = True
        opts.use_property_decorate = False
        opts.prop(settings, "resolution")
        opts.prop(settings, "seed")
        opts.prop(settings, "enable_pbr")
        opts.prop(settings, "uv_policy")
        _draw_provider_options(layout, settings)

        n = count_valid(context)
        busy = count_busy(context)
        row = layout.row()
        row.scale_y = 1.5
        text = (f"Texturing {busy}… (Esc cancels)" if busy and busy >= n
                else f"Texture {n - busy} selected")
        row.operator("text_to_texture.generate", icon="TEXTURE", text=text)
        _draw_price(layout, context.scene, [o for o in selected if o.type == "MESH"])


class T2T_PT_jobs(bpy.types.Panel):
    bl_idname = "T2T_PT_jobs"
    bl_label = "Jobs"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Texture"
    bl_parent_id = "T2T_PT_texture"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.text_to_texture
        layout.template_list("T2T_UL_jobs", "", settings, "jobs", settings, "active_job", rows=3)
        jobs = settings.jobs
        counts = _counts(jobs)
        if counts:
            layout.label(text=counts)
        rec: Any = _focus(jobs, settings.active_job)
        if rec is not None:
            box = layout.box()
            col = box.column(align=True)
            col.label(text=rec.object.name if rec.object else rec.object_name, icon="OBJECT_DATA")
            for line in _wrap(rec.message, 42):
                col.label(text=line)
            col.label(text=f"{label(rec.provider)} · {_elapsed(rec)}",
                      icon="TIME")
            for i, line in enumerate(_wrap(rec.prompt, 42)[:3]):
                col.label(text=line, icon="TEXT" if i == 0 else "BLANK1")
            if rec.info:
                for i, line in enumerate(_wrap(rec.info, 42)):
                    col.label(text=line, icon="INFO" if i == 0 else "BLANK1")
            if len(rec.variants) > 1:
                row = col.row(align=True)
                row.label(text="Variant")
                for i, variant in enumerate(rec.variants):
                    op = row.operator("text_to_texture.use_variant", text=str(i + 1),
                                      depress=variant.material == rec.material)
                    op.job_id = rec.job_id
                    op.index = i
            if rec.material:
                col.label(text=rec.material.name, icon="MATERIAL")
            if rec.state in ("applied", "failed", "canceled"):
                row = box.row(align=True)
                op = row.operator("text_to_texture.recall", icon="RECOVER_LAST", text="Recall")
                op.job_id = rec.job_id
                if rec.material:
                    asset = rec.material.asset_data is not None
                    op = row.operator("text_to_texture.add_to_assets", icon="ASSET_MANAGER",
                                      text="In Assets" if asset else "Add to Assets",
                                      depress=asset)
                    op.job_id = rec.job_id
            record: Any = rec
            if record.provider != "PROCEDURAL":
                op = box.operator("text_to_texture.copy_report", icon="COPYDOWN")
                op.job_id = record.job_id
        row = layout.row(align=True)
        active = len(engine().active_ids())
        row.operator("text_to_texture.cancel_all", icon="CANCEL",
                     text=f"Cancel {active}" if active else "Cancel")
        row.operator("text_to_texture.clear_finished", icon="TRASH", text="Clear")


def _counts(jobs: bpy.types.bpy_prop_collection) -> str:
    """"2 working · 1 done · 3 queued" for the jobs still in the list."""
    parked = engine().parked  # results kept for the artist to apply
    kept = sum(1 for r in jobs if r.state == "ready" and r.job_id in parked)
    working = sum(1 for r in jobs if r.state in ACTIVE and r.state != "queued") - kept
    queued = sum(1 for r in jobs if r.state == "queued")
    done = sum(1 for r in jobs if r.state == "applied")
    failed = sum(1 for r in jobs if r.state in ("failed", "canceled"))
    parts = [f"{n} {word}" for n, word in ((working, "working"), (queued, "queued"),
                                            (kept, "to apply"), (done, "done"),
                                            (failed, "stopped")) if n]
    return " · ".join(parts)


def _focus(jobs: bpy.types.bpy_prop_collection, active: int) -> bpy.types.PropertyGroup | None:
    """The job the details box describes: the selected row, unless it is still waiting while
    another one works — then the one working, which is what the artist wants to follow."""
    selected = jobs[active] if 0 <= active < len(jobs) else None
    if selected is not None and selected.state != "queued":
        return selected
    working = [r for r in jobs if r.state in ACTIVE and r.state != "queued"]
    return working[0] if working else selected


def _draw_connection(layout: bpy.types.UILayout | None, provider_id: str) -> None:
    """Until the chosen provider's settings have worked once this session: a Test Connection
    button, and what the last test said when it failed."""
    if layout is None:
        return
    col = layout.column(align=True)
    op = col.operator("text_to_texture.test_connection", icon="LINKED",
                      text="Testing…" if connection.running(provider_id) else "Test Connection")
    op.provider = provider_id
    check = connection.result(provider_id)
    if check is not None and not check.ok and not connection.running(provider_id):
        for i, line in enumerate(_wrap(check.line, 38)):
            col.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


def _draw_provider_options(layout: bpy.types.UILayout, settings: T2T_SceneSettings) -> None:
    """The chosen provider's own options (its surface draws them), in a box of their own."""
    pid = settings.provider
    options = surface(pid)
    if not options.SCENE:
        return
    box = layout.box()
    col = box.column(align=True)
    col.use_property_split = True
    col.use_property_decorate = False
    col.label(text=f"{label(pid)} options", icon="PREFERENCES")
    options.draw(box, col, settings)


def _draw_price(layout: Any, scene: Any, objects: list[bpy.types.Object]) -> None:
    """The price of the selection, under the button: no network here (see `quotes.shown`)."""
    if not objects:
        return
    text = quotes.shown(scene, objects)
    row = layout.row(align=True)
    if text:
        row.label(text=text, icon="FUND")
    if not quotes.publishes_prices(scene.text_to_texture.provider):
        row.operator("text_to_texture.quote", icon="FUND" if not text else "FILE_REFRESH",
                     text="" if text else "Ask for the price")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines or [""]


classes = (T2T_UL_jobs, T2T_PT_texture, T2T_PT_jobs)
