"""Getting a finished Triverse task's textured GLB: a signed link from `/tasks/url`, renewed
once when it expired, else `/tasks/download` through the API itself [C T7]."""

from __future__ import annotations

import logging

from ...net.http import HttpClient, HttpError, LinkExpired
from ..base import CancelToken
from .contract import envelope_code, first_str, unwrap

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
    """`GET /tasks/download/{uuid}` needs the key: streamed to the file like any download
    (capped while it arrives), the key going to the API's own origin only."""
    try:
        return client.download(
            f"/tasks/download/{remote_id}", dest, max_bytes, cancel, expect="glb",
            what="textured model", with_key=True, fix_extension=False).path
    except HttpError as exc:
        if isinstance(exc.body, dict):
            unwrap(exc.body)  # an error envelope (even on a 200): its documented line
        raise
