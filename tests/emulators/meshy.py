"""Meshy, as docs/providers.md §1 describes it: API v2, in the world after v1's sunset.

Routes (v2): `POST /openapi/v2/retexture` (answers the whole task object), `GET|DELETE
/openapi/v2/tasks/{id}`, `GET /openapi/v2/tasks/{id}/stream` (SSE), `GET /openapi/v2/tasks`
(list), `GET /openapi/v2/balance`, and the signed result files under `/assets/…` (no auth;
`Expires` checked). Errors are `{type, code, message, doc_url}`; unknown routes answer 404
`not_found`/`route_not_found` ("NoMatchingRoute: …").

The create is strict as v2 is: a field the endpoint does not define is a 400 `invalid_input`
naming it (v1 names such as `text_style_prompt` included); prompt and image together are 400
`parameters_conflict`; a data URI must be typed `model/gltf-binary`. `refuse_fields` makes the
emulator refuse optional fields it would otherwise take (a v2 that defines fewer than we send).

The plan allows `queue_limit` unfinished tasks (PENDING + IN_PROGRESS; 10, a Pro plan): one more
create answers 429 `rate_limited`/`pending_task_limit_reached` without Retry-After. More than
`rps_limit` requests in a second answer 429 `rate_limit_exceeded` with Retry-After.

`v1=True` (with `v2=False`) is a v1-era server instead: `POST /openapi/v1/retexture` answers
`{"result": id}`, tasks are read at `/openapi/v1/retexture/{id}` with results at the top level,
balance at `/openapi/v1/balance`, errors `{"message"}` only, and v2 routes get the v1-era
`{"message": "NoMatchingRoute: …"}` 404 without a code.

Choices where the sources are silent ([I] in providers.md): create answers 202; the `uv_mode`
value for new UVs is "generate" (any other value is refused); a data URI that decodes but is not
a GLB is 400 `invalid_input`; 402 carries `insufficient_credits`; DELETE of a PENDING task
deletes and refunds it, of an IN_PROGRESS task is refused (400 `invalid_input`/
`task_in_progress`, the task runs on) unless `delete_running=True`, of a finished task deletes it.
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

RETEXTURE = "/openapi/v2/retexture"
TASKS = "/openapi/v2/tasks"
BALANCE = "/openapi/v2/balance"
V1_RETEXTURE = "/openapi/v1/retexture"
V1_BALANCE = "/openapi/v1/balance"
NO_ROUTE = "NoMatchingRoute: Please double check the path and method"
DOC = "https://docs.meshy.ai/api/v2/errors"
MAX_PROMPT = 600
TEXTURE_MODELS = ("meshy-7", "meshy-n1", "meshy-6-lite")
UV_MODES = ("generate",)
V2_FIELDS = frozenset({"model_url", "input_task_id", "texture_model", "texture_prompt",
                       "texture_image_url", "uv_mode", "texture_resolution", "target_formats",
                       "enable_pbr"})
V1_FIELDS = frozenset({"model_url", "input_task_id", "text_style_prompt", "image_style_url",
                       "ai_model", "enable_original_uv", "enable_pbr", "texture_resolution",
                       "remove_lighting", "target_formats"})
TARGET_FORMATS = ("glb", "obj", "fbx", "stl", "usdz", "3mf")
MODEL_EXTS = (".glb", ".gltf", ".obj", ".fbx", ".stl")
TEXTURE_FILES = {  # role -> file name (the seed's example swaps normal/roughness: not copied)
    "base_color": "texture_0.png",
    "metallic": "texture_0_metallic.png",
    "normal": "texture_0_normal.png",
    "roughness": "texture_0_roughness.png",
}
STATUS = {"queued": "PENDING", "running": "IN_PROGRESS", "succeeded": "SUCCEEDED",
          "failed": "FAILED", "canceled": "CANCELED", "expired": "EXPIRED"}
COST = 10
RETENTION_MS = 3 * 24 * 3600 * 1000


class MeshyEmulator(Emulator):
    name = "meshy"
    env_prefix = "MESHY"
    default_key = "msy_emulator_key_7f3a9c1e5b2d4f60"

    def __init__(self, *args: Any, balance: int = 1000, queue_limit: int = 10,
                 rps_limit: int | None = None, v2: bool = True, v1: bool = False,
                 balance_route: bool = True, max_data_uri_bytes: int = 100 * 1024 * 1024,
                 url_ttl: float = 3600.0, sse_interval: float = 0.1,
                 delete_running: bool = False, **kwargs: Any) -> None:
        self.balance = balance
        self.queue_limit = queue_limit
        self.rps_limit = rps_limit
        self.v2 = v2
        self.v1 = v1
        self.balance_route = balance_route
        self.max_data_uri_bytes = max_data_uri_bytes
        self.url_ttl = url_ttl
        self.sse_interval = sse_interval
        self.delete_running = delete_running
        self.refuse_fields: set[str] = set()  # optional fields this "v2" does not define
        self.rate_limit_retry_after = "1"  # Retry-After of a rate_limit_exceeded answer
        self.queue_full_answers = 0  # 429 pending_task_limit_reached answers given
        self._secret = b"emulator-signing-secret"
        self._images: dict[str, bytes] = {}
        self._image_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    # ---- errors --------------------------------------------------------------------------------

    def error(self, status: int, message: str, headers: dict[str, str] | None = None,
              *, code: str = "", kind: str = "") -> Response:
        if self.v1 and not self.v2:
            return json_response({"message": message}, status, headers)
        default = {400: ("invalid_input", "invalid_input"),
                   401: ("unauthorized", "invalid_api_key"),
                   402: ("insufficient_funds", "insufficient_credits"),
                   403: ("forbidden", "forbidden"), 404: ("not_found", "not_found"),
                   429: ("rate_limited", "rate_limit_exceeded")}.get(
                       status, ("server_error", "internal_error"))
        return json_response({"type": kind or default[0], "code": code or default[1],
                              "message": message, "doc_url": DOC}, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid API key")

    def no_route(self, req: Request) -> Response:
        return self.error(404, NO_ROUTE, code="route_not_found", kind="not_found")

    # ---- routes --------------------------------------------------------------------------------

    def setup_routes(self) -> None:
        tid = r"/(?P<task_id>[^/]+)"
        self.route("POST", RETEXTURE, self._v2(self._create))
        self.route("GET", TASKS, self._v2(self._list))
        self.route("GET", TASKS + tid, self._v2(self._get))
        self.route("DELETE", TASKS + tid, self._v2(self._delete))
        self.route("GET", TASKS + tid + "/stream", self._v2(self._stream))
        self.route("GET", BALANCE, self._v2(self._balance))
        self.route("POST", V1_RETEXTURE, self._v1(self._create))
        self.route("GET", V1_RETEXTURE + tid, self._v1(self._get))
        self.route("DELETE", V1_RETEXTURE + tid, self._v1(self._delete))
        self.route("GET", V1_BALANCE, self._v1(self._balance))
        self.route("GET", r"/assets/tasks/(?P<task_id>[^/]+)/output/(?P<file>[\w.]+)",
                   self._file, auth=False, is_file=True)

    def _v2(self, handler: Any) -> Any:
        def route(req: Request) -> Response:
            if not self.v2:
                return self.no_route(req)
            req.params["api"] = "v2"
            return handler(req)
        return route

    def _v1(self, handler: Any) -> Any:
        def route(req: Request) -> Response:
            if not self.v1:
                return self.no_route(req)
            req.params["api"] = "v1"
            return handler(req)
        return route

    # ---- create --------------------------------------------------------------------------------

    def _create(self, req: Request) -> Response:
        api = req.params["api"]
        if self.rps_limit is not None and self._recent_requests() > self.rps_limit:
            return self.error(429, "Too many requests per second",
                              {"Retry-After": self.rate_limit_retry_after},
                              code="rate_limit_exceeded")
        body = req.json
        if req.json_error or not isinstance(body, dict):
            return self.error(400, "Invalid request body: expected a JSON object")
        problem = self._check_v2(body) if api == "v2" else self._check_v1(body)
        if problem:
            return problem
        mesh, problem = self._mesh_of(body, api)
        if problem:
            return problem
        with self.lock:
            if self.balance < COST:
                return self.error(402, "Insufficient credits")
            if self._active() >= self.queue_limit:
                self.queue_full_answers += 1
                return self.error(429, f"You have reached the limit of {self.queue_limit} "
                                  "pending tasks of your plan", code="pending_task_limit_reached")
            # The echo of an inline file is cut short (as the docs' examples show it).
            kept = {k: (v[:48] + "…" if isinstance(v, str) and v.startswith("data:") else v)
                    for k, v in body.items()}
            task = self.new_task("retexture", kept)
            task.data["_api"] = api
            self.balance -= COST
        new_uvs = (body.get("uv_mode") == "generate" if api == "v2"
                   else body.get("enable_original_uv") is False)
        task.files["model.glb"] = self._retextured(mesh) if new_uvs else mesh
        if api == "v1":
            return json_response({"result": task.id}, 202)
        return json_response(self.task_json(task), 202)

    def _check_v2(self, body: dict[str, Any]) -> Response | None:
        for name in body:
            if name not in V2_FIELDS or name in self.refuse_fields:
                return self.error(400, f"Unknown parameter: {name}")
        if body.get("model_url") and body.get("input_task_id"):
            return self.error(400, "Send either model_url or input_task_id, not both")
        if not (body.get("model_url") or body.get("input_task_id")):
            return self.error(400, "model_url or input_task_id is required")
        if "texture_model" not in body:
            return self.error(400, "texture_model is required")
        if body["texture_model"] not in TEXTURE_MODELS:
            return self.error(400, f"Invalid texture_model: {body['texture_model']!r}")
        if body.get("texture_prompt") and body.get("texture_image_url"):
            return self.error(400, "texture_prompt and texture_image_url cannot be used together",
                              code="parameters_conflict")
        if not (body.get("texture_prompt") or body.get("texture_image_url")):
            return self.error(400, "texture_prompt or texture_image_url is required")
        if "uv_mode" in body and body["uv_mode"] not in UV_MODES:
            return self.error(400, f"Invalid uv_mode: {body['uv_mode']!r}")
        formats = body.get("target_formats", ["glb"])
        if not isinstance(formats, list) or not all(f in TARGET_FORMATS for f in formats):
            return self.error(400, "Invalid target_formats")
        return (self._check_text(body, ("texture_prompt",))
                or self._check_bools(body, ("enable_pbr",))
                or self._check_choice(body, "texture_resolution", ("2k", "4k", "8k"))
                or self._check_style_image(body.get("texture_image_url"), "texture_image_url"))

    def _check_v1(self, body: dict[str, Any]) -> Response | None:
        # v1 ignored fields it did not know (V1_FIELDS lists the ones it read).
        if not (body.get("text_style_prompt") or body.get("image_style_url")):
            return self.error(400, "text_style_prompt or image_style_url is required")
        return (self._check_text(body, ("text_style_prompt",))
                or self._check_bools(body, ("enable_original_uv", "enable_pbr"))
                or self._check_style_image(body.get("image_style_url"), "image_style_url"))

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

    def _check_style_image(self, url: Any, name: str) -> Response | None:
        if not url:
            return None
        if not isinstance(url, str):
            return self.error(400, f"{name} must be a string")
        if url.startswith("data:"):
            data, problem = self._decode_data_uri(url, ("image/png", "image/jpeg", "image/jpg"))
            if problem:
                return problem
            if not (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8\xff")):
                return self.error(400, f"Invalid image: {name} must be a PNG or JPEG")
            return None
        if not re.search(r"\.(png|jpe?g)$", url.split("?")[0].lower()):
            return self.error(400, "Invalid image file extension")
        return None

    def _mesh_of(self, body: dict[str, Any], api: str) -> tuple[bytes, Response | None]:
        """The uploaded GLB (data URI), or a stand-in quad for a URL / input task."""
        url = body.get("model_url")
        if body.get("input_task_id") and not url:
            source = self.task(str(body["input_task_id"]))
            if source is None:
                return b"", self.error(404, "Task not found", code="task_not_found")
            return source.files.get("model.glb", quad_glb()), None
        if not isinstance(url, str):
            return b"", self.error(400, "model_url must be a string")
        if url.startswith("data:"):
            mimes = (("model/gltf-binary",) if api == "v2"
                     else ("application/octet-stream", "model/gltf-binary"))
            data, problem = self._decode_data_uri(url, mimes)
            if problem:
                return b"", problem
            try:
                read_glb(data)
            except ValueError:
                return b"", self.error(400, "Invalid model file: the data URI is not a GLB")
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
            return b"", self.error(400, "Invalid data URI: expected base64 of type "
                                   f"{' or '.join(mimes)}")
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

    def _task_at(self, req: Request) -> SimTask | None:
        task = self.task(req.params["task_id"])
        if task is None or task.data.get("_api") != req.params["api"]:
            return None
        return task

    def _get(self, req: Request) -> Response:
        task = self._task_at(req)
        if task is None:
            return self.error(404, "Task not found", code="task_not_found")
        return json_response(self.task_json(task))

    def _list(self, req: Request) -> Response:
        try:
            page = int(req.arg("page_num", "1") or 1)
            size = int(req.arg("page_size", "10") or 10)
        except ValueError:
            return self.error(400, "page_num and page_size must be integers")
        if not 1 <= size <= 50 or page < 1:
            return self.error(400, "page_size must be between 1 and 50")
        kind = req.arg("type")
        with self.lock:
            tasks = [t for t in self.tasks.values() if not t.deleted
                     and t.data.get("_api") == "v2" and kind in (None, t.kind)]
        tasks.sort(key=lambda t: t.created, reverse=True)
        chunk = tasks[(page - 1) * size: page * size]
        return json_response([self.task_json(t) for t in chunk])

    def _delete(self, req: Request) -> Response:
        task = self._task_at(req)
        if task is None:
            return self.error(404, "Task not found", code="task_not_found")
        phase = task.phase()[0]
        with self.lock:
            if phase == "running" and not self.delete_running:
                return self.error(400, "A task in progress cannot be deleted",
                                  code="task_in_progress")
            if phase == "queued":
                self.balance += COST  # a waiting task is refunded
            task.deleted = True
        return json_response({})

    def _stream(self, req: Request) -> Response:
        task = self._task_at(req)
        if task is None:
            return self.error(404, "Task not found", code="task_not_found")

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
        if req.params["api"] == "v1":
            return json_response({"balance": self.balance})
        return json_response({"balance": self.balance, "monthly_credits": self.balance,
                              "permanent_credits": 0})

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
        """The task object as it looks right now: v2 (results under `output`) or v1."""
        phase, progress = task.phase()
        status = STATUS[phase]
        ms = lambda t: int(t * 1000)  # noqa: E731
        done = phase in ("succeeded", "failed", "canceled", "expired")
        results: dict[str, Any] = {"model_urls": {}, "texture_urls": [], "thumbnail_url": ""}
        if phase == "succeeded":
            model = task.data.get("texture_model", task.data.get("ai_model"))
            pbr = task.data.get("enable_pbr", False) and model != "meshy-n1"
            roles = TEXTURE_FILES if pbr else {"base_color": TEXTURE_FILES["base_color"]}
            results = {"model_urls": {"glb": self.signed_url(task, "model.glb")},
                       "texture_urls": [{r: self.signed_url(task, f) for r, f in roles.items()}],
                       "thumbnail_url": self.signed_url(task, "preview.png")}
        out: dict[str, Any] = {
            "id": task.id,
            "type": task.kind,
            "status": status,
            "progress": 100 if phase == "succeeded" else int(progress * 100),
            "created_at": ms(task.created),
            "started_at": ms(task.started_at()) if phase != "queued" else 0,
            "finished_at": ms(task.finished_at()) if done else 0,
            "expires_at": ms(task.finished_at()) + RETENTION_MS if done else 0,
            "consumed_credits": 0 if phase == "failed" else COST,
        }
        if phase == "queued":
            out["preceding_tasks"] = sum(
                1 for t in self.tasks.values()
                if t.created < task.created and not t.deleted and t.phase()[0] == "queued")
        inputs = {k: v for k, v in task.data.items() if not k.startswith("_")}
        if task.data.get("_api") == "v1":
            out["task_error"] = {"message": task.fail_message if phase == "failed" else ""}
            out.update(results)
            return out
        out["task_error"] = ({"type": "task_failed", "code": "generation_failed",
                              "message": task.fail_message, "doc_url": DOC}
                             if phase == "failed" else None)
        out["input"] = inputs
        out["output"] = results
        return out

    # ---- knobs specific to Meshy ---------------------------------------------------------------

    def expire_task(self, task_id: str) -> None:
        """Mark a task EXPIRED (the status the old Text to Texture page gave results past
        retention)."""
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
