"""Getting a finished Triverse task's textured GLB: a signed link from `/tasks/url`, renewed
once when it expired, else `/tasks/download` through the API itself [C T7]."""

from __future__ import annotations

import logging
import os
import tempfile

from ...net.http import HttpClient, HttpError, LinkExpired
from ..base import CancelToken, ProviderError
from .contract import MB, envelope_code, first_str, unwrap

log = logging.getLogger(__name__)


def download_result(client: HttpClient, remote_id: str, dest: str, max_bytes: int,
                    cancel: CancelToken) -> str:
    """`/tasks/url` gives a (signed) link; an expired link is asked for once more; without
    that endpoint or link, `/tasks/download` streams the file from the API itself."""
    for attempt in range(2):
        url = result_url(client, remote_id, cancel)
        if not url:
            break
        try:
            return client.download(url, dest, max_bytes, cancel, expect="glb",
                                   what="textured model").path
        except LinkExpired:
            if attempt:
                log.info("Triverse result link expired twice; downloading through the API")
    return download_direct(client, remote_id, dest, max_bytes, cancel)


def result_url(client: HttpClient, remote_id: str, cancel: CancelToken) -> str:
    try:
        answer = client.get_json(f"/tasks/url/{remote_id}", cancel, context="task")
    except HttpError as exc:
        if exc.status in (404, 405) and envelope_code(exc.body) not in (1006, 4042):
            log.info("Triverse has no /tasks/url here; using /tasks/download")
            return ""  # no such route (not Triverse's "no such task" / "no assets")
        raise
    # Documented fields inside `data` [I]; tolerated at the top level too, or as a bare URL.
    data = answer.get("data", answer) if isinstance(answer, dict) else answer
    url = data if isinstance(data, str) else first_str(
        unwrap(answer), "download_url", "downloadUrl", "url")
    if url and url.startswith("/"):
        url = client.url(url)
    return url


def download_direct(client: HttpClient, remote_id: str, dest: str, max_bytes: int,
                    cancel: CancelToken) -> str:
    """`GET /tasks/download/{uuid}` needs the key, so it goes through the API session (not
    streamed: http.py's streaming download never sends credentials)."""
    resp = client.request("GET", f"/tasks/download/{remote_id}", cancel=cancel, context="task")
    data = resp.content
    if len(data) > max_bytes:
        raise ProviderError(f"The textured model from Triverse is larger than "
                            f"{max_bytes // MB} MB this add-on accepts")
    if data[:4] != b"glTF":
        if data[:1] == b"{":
            unwrap(client.json_of(resp))  # a 200 carrying an error envelope
        raise ProviderError("Triverse sent a textured model that is not a GLB")
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".t2t-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ProviderError(f"Could not save the textured model in {folder}: "
                            f"{exc.strerror or exc}") from None
    return dest
