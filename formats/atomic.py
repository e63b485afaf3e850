"""Files that appear whole or not at all: a reader (Blender, a resumed session) never sees
half of a map, a mesh or a journal entry, whatever moment the process dies at."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

Content = bytes | str | Callable[[IO[bytes]], None]


def write_atomic(
    path: str | os.PathLike[str],
    content: Content,
    *,
    durable: bool = False,
    mode: int | None = 0o644,
) -> Path:
    """Write `content` (bytes, UTF-8 text, or a function writing into the file) to a temporary
    file beside `path` and rename it into place. `durable` also fsyncs (power loss); `mode`
    replaces mkstemp's private 0600 for ordinary, shareable files (None keeps it private)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".t2t-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(content, bytes):
                fh.write(content)
            elif isinstance(content, str):
                fh.write(content.encode("utf-8"))
            else:
                content(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
