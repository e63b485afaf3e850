"""Text to Texture: texture the selected meshes from a text prompt.

This file only registers; everything else lives in the packages it names:

    panels/, operators/, cli.py, preferences.py   what the artist sees and presses
    blender/     Blender data: jobs' main-thread side, materials, meshes, provider surfaces
    jobs/        no bpy: the job state machine, worker threads, the journal
    providers/   no bpy: one module per service behind one interface
    formats/     no bpy: mesh, image and glTF files
    net/         no bpy: HTTP, the local server, errors, cancel, redaction
"""

import bpy

from . import cli, preferences
from .blender import connection, lifecycle, props
from .operators import generate, jobs, library, support
from .panels import sidebar

# The stubs declare this factory as returning None; it returns (register, unregister).
_register, _unregister = bpy.utils.register_classes_factory(  # type: ignore[func-returns-value,misc]
    (
        *preferences.classes,
        *props.classes,
        generate.T2T_OT_generate,
        jobs.T2T_OT_cancel_job,
        jobs.T2T_OT_cancel_all,
        jobs.T2T_OT_reapply,
        jobs.T2T_OT_retry,
        jobs.T2T_OT_clear_finished,
        jobs.T2T_OT_quote,
        jobs.T2T_OT_use_variant,
        jobs.T2T_OT_apply_to_active,
        *library.classes,
        *support.classes,
        *sidebar.classes,
    )
)


def register() -> None:
    _register()  # type: ignore[has-type]
    props.attach()
    lifecycle.register()
    cli.register()


def unregister() -> None:
    connection.forget()
    cli.unregister()
    lifecycle.unregister()
    props.detach()
    _unregister()  # type: ignore[has-type]
