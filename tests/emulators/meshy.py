"""Meshy, as docs/providers.md §1 describes it.

Routes: Retexture `/openapi/v1/retexture` (create, list, get, delete, SSE stream), the legacy
Text to Texture at `/openapi/v1/text-to-texture` and `/v1/text-to-texture` (switchable to the
`NoMatchingRoute` 404 the live service now gives), `/openapi/v1/balance`, and the signed result
files under `/assets/…` (no auth; `Expires` checked).

Choices where the sources are silent (marked [I] in providers.md): create answers 202; a data URI
that decodes but is not a GLB is 422; unknown paths answer 404 NoMatchingRoute before auth; the
texture/model file names follow the seed but unswapped; `type` is "retexture" or
"text-to-texture"; a DELETEd task is gone (GET 404).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from .base import Emulator, Request, Response, SimTask, json_response, map_png
from .glb import quad_glb, read_glb, with_new_uvs

RETEXTURE = "/openapi/v1/retexture"
LEGACY = ("/openapi/v1/text-to-texture", "/v1/text-to-texture")
NO_ROUTE = "NoMatchingRoute: Please double check the path and method"
MAX_PROMPT = 600
AI_MODELS = ("latest", "meshy-5", "meshy-6", "meshy-6-lite", "meshy-7", "meshy-n1")
ART_STYLES = ("realistic", "fake-3d-cartoon", "japanese-anime", "cartoon-line-art",
              "realistic-hand-drawn", "fake-3d-hand-drawn", "oriental-comic-ink")
MODEL_EXTS = (".glb", ".gltf", ".obj", ".fbx", ".stl")
TEXTURE_FILES = {  # role -> file name (the seed's example swaps normal/roughness: not copied)
    "base_color": "texture_0.png",
    "metallic": "texture_0_metallic.png",
    "normal": "texture_0_normal.png",
    "roughness": "texture_0_roughness.png",
}
STATUS = {"queued": "PENDING", "running": "IN_PROGRESS", "succeeded": "SUCCEEDED",
          "failed": "FAILED", "canceled": "CANCELED", "expired": "EXPIRED"}
COST = {"retexture": 10, "text-to-texture": 5}
RETENTION_MS = 3 * 24 * 3600 * 1000


class MeshyEmulator(Emulator):
    name = "meshy"
    env_prefix = "MESHY"
    default_key = "msy_emulator_key_7f3a9c1e5b2d4f60"

    def __init__(self, *args: Any, balance: int = 1000, queue_limit: int = 10,
                 rps_limit: int | None = None, retexture_route: bool = True,
                 legacy_routes: bool = True, balance_route: bool = True,
                 max_data_uri_bytes: int = 100 * 1024 * 1024, url_ttl: float = 3600.0,
                 sse_interval: float = 0.1, **kwargs: Any) -> None:
        self.balance = balance
        self.queue_limit = queue_limit
        self.rps_limit = rps_limit
        self.retexture_route = retexture_route
        self.legacy_routes = legacy_routes
        self.balance_route = balance_route
        self.max_data_uri_bytes = max_data_uri_bytes
        self.url_ttl = url_ttl
        self.sse_interval = sse_interval
        self._secret = b"emulator-signing-secret"
        self._images: dict[str, bytes] = {}
        self._image_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    # ---- routes --------------------------------------------------------------------------------

    def setup_routes(self) -> None:
        for base in (RETEXTURE, *LEGACY):
            kind = "retexture" if base == RETEXTURE else "text-to-texture"
            tid = r"/(?P<task_id>[^/]+)"
            self.route("POST", base, self._creator(base, kind))
            self.route("GET", base, self._guard(base, self._list))
            self.route("GET", base + tid, self._guard(base, self._get))
            self.route("DELETE", base + tid, self._guard(base, self._delete))
            self.route("GET", base + tid + "/stream", self._guard(base, self._stream))
        self.route("GET", "/openapi/v1/balance", self._balance)
        self.route("GET", r"/assets/tasks/(?P<task_id>[^/]+)/output/(?P<file>[\w.]+)",
                   self._file, auth=False, is_file=True)

    def no_route(self, req: Request) -> Response:
        return self.error(404, NO_ROUTE)

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid API key")

    def route_enabled(self, base: str) -> bool:
        return self.retexture_route if base == RETEXTURE else self.legacy_routes

    def _guard(self, base: str, handler: Any) -> Any:
        def guarded(req: Request) -> Response:
            if not self.route_enabled(base):
                return self.no_route(req)
            req.params["base"] = base
            return handler(req)
        return guarded

    def _creator(self, base: str, kind: str) -> Any:
        def create(req: Request) -> Response:
            if not self.route_enabled(base):
                return self.no_route(req)
            return self._create(req, base, kind)
        return create

    # ---- create --------------------------------------------------------------------------------

    def _create(self, req: Request, base: str, kind: str) -> Response:
        if self.rps_limit is not None and self._recent_requests() > self.rps_limit:
            return self.error(429, "RateLimitExceeded")
        body = req.json
        if req.json_error or not isinstance(body, dict):
            return self.error(400, "Invalid request body: expected a JSON object")
        problem = (self._check_retexture(body) if kind == "retexture"
                   else self._check_legacy(body))
        if problem:
            return problem
        mesh, problem = self._mesh_of(body)
        if problem:
            return problem
        with self.lock:
            if self.balance < COST[kind]:
                return self.error(402, "Insufficient credits")
            if self._active() >= self.queue_limit:
                return self.error(429, "NoMoreConcurrentTasks")
            task = self.new_task(kind, {k: v for k, v in body.items()
                                        if k not in ("model_url", "image_style_url")})
            task.data["_base"] = base
            self.balance -= COST[kind]
        # EN docs: enable_original_uv defaults to true (newer zh-Hant docs say false; a careful
        # client always sends it, so the default only matters to clients that omit it).
        original_uv = body.get("enable_original_uv", True)
        task.files["model.glb"] = mesh if original_uv else self._retextured(mesh)
        return json_response({"result": task.id}, 202)

    def _check_retexture(self, body: dict[str, Any]) -> Response | None:
        if not (body.get("model_url") or body.get("input_task_id")):
            return self.error(400, "model_url or input_task_id is required")
        if not (body.get("text_style_prompt") or body.get("image_style_url")):
            return self.error(400, "text_style_prompt or image_style_url is required")
        return (self._check_text(body, ("text_style_prompt",))
                or self._check_bools(body, ("enable_original_uv", "enable_pbr",
                                            "remove_lighting"))
                or self._check_choice(body, "texture_resolution", ("2k", "4k", "8k"))
                or self._check_choice(body, "ai_model", AI_MODELS)
                or self._check_style_image(body.get("image_style_url")))

    def _check_legacy(self, body: dict[str, Any]) -> Response | None:
        for name in ("model_url", "object_prompt", "style_prompt"):
            if not body.get(name):
                return self.error(400, f"{name} is required")
        return (self._check_text(body, ("object_prompt", "style_prompt", "negative_prompt"))
                or self._check_bools(body, ("enable_original_uv", "enable_pbr"))
                or self._check_choice(body, "resolution", ("1024", "2048", "4096"))
                or self._check_choice(body, "art_style", ART_STYLES))

    def _check_text(self, body: dict[str, Any], names: tuple[str, ...]) -> Response | None:
        for name in names:
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                return self.error(400, f"{name} must be a string")
            if value and len(value) > MAX_PROMPT:
                return self.error(400, f"{name} must be at most {MAX_PROMPT} characters")
        return None

    def _check_bools(self, body: dict[str, Any], names: tuple[str, ...]) -> Response | None:
        for name in names:
            if name in body and not isinstance(body[name], bool):
                return self.error(400, f"{name} must be a boolean")
        return None

    def _check_choice(self, body: dict[str, Any], name: str,
                      allowed: tuple[str, ...]) -> Response | None:
        if name in body and body[name] not in allowed:
            return self.error(400, f"Invalid {name}: {body[name]!r}")
        return None

    def _check_style_image(self, url: Any) -> Response | None:
        if not url:
            return None
        if not isinstance(url, str):
            return self.error(400, "image_style_url must be a string")
        if url.startswith("data:"):
            data, problem = self._decode_data_uri(url, ("image/png", "image/jpeg", "image/jpg"))
            if problem:
                return problem
            if not (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8\xff")):
                return self.error(422, "Invalid image: image_style_url must be a PNG or JPEG")
            return None
        if not re.search(r"\.(png|jpe?g)$", url.split("?")[0].lower()):
            return self.error(400, "Invalid image file extension")
        return None

    def _mesh_of(self, body: dict[str, Any]) -> tuple[bytes, Response | None]:
        """The uploaded GLB (data URI), or a stand-in quad for a URL / input task."""
        url = body.get("model_url")
        if body.get("input_task_id") and not url:
            source = self.task(str(body["input_task_id"]))
            if source is None:
                return b"", self.error(404, "Task not found")
            return source.files.get("model.glb", quad_glb()), None
        if not isinstance(url, str):
            return b"", self.error(400, "model_url must be a string")
        if url.startswith("data:"):
            data, problem = self._decode_data_uri(
                url, ("application/octet-stream", "model/gltf-binary"))
            if problem:
                return b"", problem
            try:
                read_glb(data)
            except ValueError:
                return b"", self.error(422, "Invalid model file: the data URI is not a GLB")
            return data, None
        path = url.split("?")[0].lower()
        if not url.startswith(("http://", "https://")):
            return b"", self.error(400, "model_url must be a public URL or a data URI")
        ext = path[path.rfind("."):] if "." in path.rsplit("/", 1)[-1] else ""
        if ext not in MODEL_EXTS:
            return b"", self.error(400, f"Invalid model file extension: {ext or '(none)'}")
        return quad_glb(), None

    def _decode_data_uri(self, uri: str, mimes: tuple[str, ...]) -> tuple[bytes, Response | None]:
        if len(uri) > self.max_data_uri_bytes:
            return b"", self.error(400, "Data URI is too large (maximum 100 MB)")
        m = re.match(r"data:([\w/.+-]+);base64,", uri)
        if not m or m.group(1).lower() not in mimes:
            return b"", self.error(400, "Invalid data URI: expected base64 with a supported type")
        try:
            return base64.b64decode(uri[m.end():], validate=True), None
        except ValueError:
            return b"", self.error(400, "Invalid data URI: bad base64")

    def _retextured(self, mesh: bytes) -> bytes:
        try:
            return with_new_uvs(mesh)
        except (ValueError, KeyError, IndexError):
            return quad_glb()

    def _active(self) -> int:
        return sum(1 for t in self.tasks.values()
                   if not t.deleted and t.phase()[0] in ("queued", "running"))

    def _recent_requests(self) -> int:
        cutoff = time.time() - 1.0
        return sum(1 for r in self.recorded() if r.at >= cutoff)

    # ---- reads ---------------------------------------------------------------------------------

    def _get(self, req: Request) -> Response:
        task = self._task_at(req)
        if task is None:
            return self.error(404, "Task not found")
        return json_response(self.task_json(task))

    def _task_at(self, req: Request) -> SimTask | None:
        task = self.task(req.params["task_id"])
        if task is None or task.data.get("_base") != req.params["base"]:
            return None
        return task

    def _list(self, req: Request) -> Response:
        try:
            page = int(req.arg("page_num", "1") or 1)
            size = int(req.arg("page_size", "10") or 10)
        except ValueError:
            return self.error(400, "page_num and page_size must be integers")
        if not 1 <= size <= 50 or page < 1:
            return self.error(400, "page_size must be between 1 and 50")
        order = req.arg("sort_by", "-created_at")
        if order not in ("+created_at", "-created_at", " created_at"):
            return self.error(400, "sort_by must be +created_at or -created_at")
        with self.lock:
            tasks = [t for t in self.tasks.values()
                     if not t.deleted and t.data.get("_base") == req.params["base"]]
        tasks.sort(key=lambda t: t.created, reverse=order == "-created_at")
        chunk = tasks[(page - 1) * size: page * size]
        return json_response([self.task_json(t) for t in chunk])  # a bare array, as Meshy does

    def _delete(self, req: Request) -> Response:
        task = self._task_at(req)
        if task is None:
            return self.error(404, "Task not found")
        with self.lock:
            task.deleted = True
        return json_response({})

    def _stream(self, req: Request) -> Response:
        task = self._task_at(req)
        if task is None:
            return self.error(404, "Task not found")

        def events() -> Iterator[bytes]:
            last = ""
            while True:
                data = json.dumps(self.task_json(task))
                if data != last:
                    yield f"event: message\ndata: {data}\n\n".encode()
                    last = data
                if task.deleted or self.task_json(task)["status"] in (
                        "SUCCEEDED", "FAILED", "CANCELED", "EXPIRED"):
                    return
                time.sleep(self.sse_interval)

        return Response(200, content_type="text/event-stream", stream=events())

    def _balance(self, req: Request) -> Response:
        if not self.balance_route:
            return self.no_route(req)
        return json_response({"balance": self.balance})

    def _file(self, req: Request) -> Response:
        task = self.task(req.params["task_id"])
        name = req.params["file"]
        expires = req.arg("Expires", "0") or "0"
        sig = req.arg("Signature", "") or ""
        good = hmac.compare_digest(sig, self._sign(req.path, expires))
        if not good or not expires.isdigit() or int(expires) < time.time():
            return Response(403, b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                            b"<Message>Request has expired</Message></Error>", "application/xml")
        if task is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        # A hostile-looking name: a client must never take its file name from the server.
        headers = {"Content-Disposition": 'attachment; filename="../../../outside.png"'}
        if name == "model.glb" and "model.glb" in task.files:
            return Response(200, task.files["model.glb"], "model/gltf-binary", headers)
        role = {v: k for k, v in TEXTURE_FILES.items()}.get(name)
        if name == "preview.png":
            role = "base_color"
        if role is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return Response(200, self.image(role), "image/png", headers)

    def image(self, role: str) -> bytes:
        with self._image_lock:
            if role not in self._images:
                self._images[role] = map_png(role, self.map_size)
            return self._images[role]

    # ---- task objects --------------------------------------------------------------------------

    def _sign(self, path: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_url(self, task: SimTask, name: str) -> str:
        path = f"/assets/tasks/{task.id}/output/{name}"
        expires = str(int(time.time() + self.url_ttl))
        return f"{self.url}{path}?Expires={expires}&Signature={self._sign(path, expires)}"

    def task_json(self, task: SimTask) -> dict[str, Any]:
        """The task object of §2.5 as it looks right now."""
        phase, progress = task.phase()
        status = STATUS[phase]
        ms = lambda t: int(t * 1000)  # noqa: E731
        done = phase in ("succeeded", "failed", "canceled", "expired")
        out: dict[str, Any] = {
            "id": task.id,
            "type": task.kind,
            "status": status,
            "progress": 100 if phase == "succeeded" else int(progress * 100),
            "created_at": ms(task.created),
            "started_at": ms(task.started_at()) if phase != "queued" else 0,
            "finished_at": ms(task.finished_at()) if done else 0,
            "expires_at": ms(task.finished_at()) + RETENTION_MS if done else 0,
            "model_urls": {},
            "texture_urls": [],
            "thumbnail_url": "",
            "task_error": {"message": task.fail_message if phase == "failed" else ""},
            "consumed_credits": 0 if phase == "failed" else COST[task.kind],
        }
        for key, value in task.data.items():
            if not key.startswith("_"):
                out.setdefault(key, value)
        if phase == "queued":
            out["preceding_tasks"] = sum(
                1 for t in self.tasks.values()
                if t.created < task.created and not t.deleted and t.phase()[0] == "queued")
        if phase == "succeeded":
            pbr = task.data.get("enable_pbr", task.kind == "text-to-texture")
            roles = TEXTURE_FILES if pbr else {"base_color": TEXTURE_FILES["base_color"]}
            out["texture_urls"] = [{r: self.signed_url(task, f) for r, f in roles.items()}]
            out["model_urls"] = {"glb": self.signed_url(task, "model.glb")}
            out["thumbnail_url"] = self.signed_url(task, "preview.png")
        return out

    # ---- knobs specific to Meshy ---------------------------------------------------------------

    def expire_task(self, task_id: str) -> None:
        """Mark a task EXPIRED (the seed's status for results past retention)."""
        with self.lock:
            self.tasks[task_id].expired = True

    def cancel_task(self, task_id: str) -> None:
        """The task was canceled on Meshy's side (the dashboard, support)."""
        with self.lock:
            self.tasks[task_id].canceled = True

    def status_requests(self, task_id: str) -> int:
        return self.count("GET", rf"/{re.escape(task_id)}$")

    def env(self) -> dict[str, str]:
        return {"MESHY_API_BASE": self.url, "MESHY_API_KEY": self.api_key}
