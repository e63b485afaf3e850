"""DRESSX Text to Texture, as docs/providers.md §4 describes it.

``POST /v2/pipeline/text-to-texture/`` (Bearer auth) validates the body and answers at once; the
task then runs on its own thread: it downloads ``mesh_url`` (the task fails, by webhook, when that
cannot be fetched or the .obj has no ``vt`` lines), works for ``pending_seconds + job_seconds``,
and POSTs the webhook to ``result_url``: valid JSON (the seed's example is not), with
``pbr_components`` pointing at this emulator's own per-role images, ``render_url``, ``mesh_url``
and ``balance``.

Choices where the sources are silent (all guesses):

* Errors look like Django REST Framework's (the trailing slash suggests it): ``{"detail": ...}``,
  field errors ``{"order": ["This field is required."]}``; a missing or wrong key (or a key
  without the mandatory ``Bearer`` prefix) answers 401 ``{"detail": "Invalid credentials."}``.
* Create answers 200 ``{"order_id": N, "status": "PROCESSIN"}`` (``create_answer`` switches to
  an empty body or plain text); a reused order id is 400; each order costs 1 credit and a zero
  balance answers 402; ``num_inference_steps`` must be 1–150.
* A ``key`` in the body is checked only when ``coordinator_key`` is set (403 otherwise).
* The failure webhook carries its reason in ``failure_field`` (default ``"message"``).
* The result files are served as PNG under ``.jpg`` names (so their pixels can be checked
  exactly; the real service sends JPEG), from routes that need no auth.

Webhook knobs: ``status_style`` "lower" (success/failure/canceled, as the example) or "upper"
(SUCCEEDED/FAILED/CANCELED/PROCESSIN, as the text); ``webhook`` "normal", "never", "duplicate"
(the final webhook twice) or "wrong_token" (sent to a result URL whose token was changed),
taken by each task when it is created (a task made while webhooks "never" come never sends
one, even if the knob is turned back before it ends);
``intermediate`` PROCESSIN webhooks before the final one; ``final_status`` overrides the final
status string; ``webhook_retries`` re-sends a webhook the receiver did not take (2xx).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from .base import Emulator, Request, Response, SimTask, json_response, map_png

CREATE = "/v2/pipeline/text-to-texture/"
FILES = "/v1/files/files"
MAP_FILES = {"albedo": "base_color", "normal": "normal", "roughness": "roughness",
             "metallic": "metallic"}
STATUS_WORDS = {
    "lower": {"done": "success", "failed": "failure", "canceled": "canceled",
              "running": "processing"},
    "upper": {"done": "SUCCEEDED", "failed": "FAILED", "canceled": "CANCELED",
              "running": "PROCESSIN"},
}
MAX_ORDER = 2**31 - 1
MAX_MESH = 50 * 1024 * 1024


@dataclass
class Sent:
    """One webhook as the emulator sent it, and what the receiver answered."""

    order: int
    url: str
    payload: dict[str, Any]
    status: int | None  # HTTP status, None when the connection failed
    answer: str
    at: float


class DressxEmulator(Emulator):
    name = "dressx"
    env_prefix = "DRESSX"
    default_key = "dressx_emulator_key_5c2e9a714b"

    def __init__(self, *args: Any, balance: int = 100, status_style: str = "lower",
                 webhook: str = "normal", intermediate: int = 0, final_status: str | None = None,
                 failure_field: str = "message", coordinator_key: str | None = None,
                 create_answer: str = "json", unique_orders: bool = True,
                 webhook_retries: int = 0, retry_delay: float = 0.2, **kwargs: Any) -> None:
        self.balance = balance
        self.status_style = status_style
        self.webhook = webhook
        self.intermediate = intermediate
        self.final_status = final_status
        self.failure_field = failure_field
        self.coordinator_key = coordinator_key
        self.create_answer = create_answer
        self.unique_orders = unique_orders
        self.webhook_retries = webhook_retries
        self.retry_delay = retry_delay
        self.sent: list[Sent] = []
        self.meshes: dict[int, bytes] = {}  # order -> the mesh fetched from mesh_url
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._images: dict[str, bytes] = {}
        super().__init__(*args, **kwargs)

    # ---- life ----------------------------------------------------------------------------------

    def start(self) -> DressxEmulator:
        self._stopping.clear()
        super().start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for worker in list(self._workers):
            worker.join(5.0)
        super().stop()

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.sent.clear()
            self.meshes.clear()

    # ---- routes --------------------------------------------------------------------------------

    def setup_routes(self) -> None:
        self.route("POST", CREATE, self._create)
        task = r"(?P<task_id>[\w-]+)"
        self.route("GET", rf"{FILES}/texture/{task}/(?P<name>\w+)\.jpg", self._map, auth=False,
                   is_file=True)
        self.route("GET", rf"{FILES}/{task}/render\.jpg", self._render, auth=False, is_file=True)
        self.route("GET", rf"{FILES}/mesh/{task}/mesh\.obj", self._mesh, auth=False,
                   is_file=True)

    def check_auth(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization", "") == f"Bearer {self.api_key}"

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return json_response({"detail": message}, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid credentials.")

    def field_error(self, name: str, message: str) -> Response:
        return json_response({name: [message]}, 400)

    # ---- create --------------------------------------------------------------------------------

    def _create(self, req: Request) -> Response:
        body = req.json
        if req.json_error or not isinstance(body, dict):
            return self.error(400, "JSON parse error - expected an object.")
        problem = self._validate(body)
        if problem is not None:
            return problem
        order = body["order"]
        with self.lock:
            if self.unique_orders and any(t.data["order"] == order for t in self.tasks.values()):
                return self.field_error("order", "Order with this id already exists.")
            if self.balance <= 0:
                return self.error(402, "Insufficient balance.")
            self.balance -= 1
            task = self.new_task("text-to-texture", dict(body))
            task.data["_webhook"] = self.webhook
        worker = threading.Thread(target=self._run, args=(task,), daemon=True,
                                  name=f"dressx-emulator-{order}")
        with self.lock:
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        if self.create_answer == "empty":
            return Response(200, b"", "application/json")
        if self.create_answer == "text":
            return Response(200, b"OK", "text/plain")
        return json_response({"order_id": order, "status": "PROCESSIN"})

    def _validate(self, body: dict[str, Any]) -> Response | None:
        for name in ("order", "prompt", "result_url"):
            if name not in body or body[name] in (None, ""):
                return self.field_error(name, "This field is required.")
        order = body["order"]
        if isinstance(order, bool) or not isinstance(order, int):
            return self.field_error("order", "A valid integer is required.")
        if not 1 <= order <= MAX_ORDER:
            return self.field_error("order", f"Ensure this value is between 1 and {MAX_ORDER}.")
        if not isinstance(body["prompt"], str) or not body["prompt"].strip():
            return self.field_error("prompt", "This field may not be blank.")
        for name in ("result_url", "mesh_url"):
            value = body.get(name)
            if name in body and not (isinstance(value, str)
                                     and re.match(r"https?://[^/\s]+", value)):
                return self.field_error(name, "Enter a valid URL.")
        steps = body.get("num_inference_steps")
        if "num_inference_steps" in body and (isinstance(steps, bool)
                                              or not isinstance(steps, int)
                                              or not 1 <= steps <= 150):
            return self.field_error("num_inference_steps",
                                    "Ensure this value is between 1 and 150.")
        seed = body.get("seed")
        if "seed" in body and (isinstance(seed, bool) or not isinstance(seed, int)):
            return self.field_error("seed", "A valid integer is required.")
        if "refine" in body and not isinstance(body["refine"], bool):
            return self.field_error("refine", "Must be a valid boolean.")
        if "key" in body and not isinstance(body["key"], str):
            return self.field_error("key", "Not a valid string.")
        if self.coordinator_key is not None and body.get("key") != self.coordinator_key:
            return self.error(403, "Invalid coordinator key.")
        return None

    # ---- the task, on its own thread -----------------------------------------------------------

    def _run(self, task: SimTask) -> None:
        order = task.data["order"]
        problem = self._fetch_mesh(task)
        if problem:
            self._send(task, self._payload(task, "failed", problem))
            return
        total = task.pending_seconds + task.job_seconds
        steps = self.intermediate
        for _ in range(steps):
            if self._stopping.wait(total / (steps + 1)):
                return
            self._send(task, {"order_id": order, "status": self._word("running")})
        if self._stopping.wait(max(0.0, task.created + total - time.time())):
            return
        if task.fail_message:
            final = self._payload(task, "failed", task.fail_message)
        elif task.canceled:
            final = self._payload(task, "canceled", "")
        else:
            final = self._payload(task, "done", "")
        if self.final_status is not None:
            final["status"] = self.final_status
        if task.data["_webhook"] == "never":
            return
        self._send(task, final)
        if task.data["_webhook"] == "duplicate":
            self._send(task, dict(final))

    def _fetch_mesh(self, task: SimTask) -> str:
        url = task.data.get("mesh_url")
        if not url:
            return "No mesh_url was given: there is no mesh to texture."
        try:
            with requests.get(url, timeout=5, stream=True) as resp:
                if resp.status_code != 200:
                    return f"Could not download mesh_url (HTTP {resp.status_code})."
                data = resp.raw.read(MAX_MESH + 1, decode_content=True)
        except requests.RequestException as exc:
            return f"Could not download mesh_url ({type(exc).__name__})."
        if len(data) > MAX_MESH:
            return "The mesh is too large."
        with self.lock:
            self.meshes[task.data["order"]] = data
        lines = data.decode("utf-8", "replace").splitlines()
        if not any(line.startswith("v ") for line in lines):
            return "mesh_url is not an .obj file."
        if not any(line.startswith("vt ") for line in lines):
            return "The mesh has no UV coordinates."
        return ""

    def _payload(self, task: SimTask, kind: str, reason: str) -> dict[str, Any]:
        order = task.data["order"]
        out: dict[str, Any] = {"order_id": order, "status": self._word(kind)}
        if kind == "done":
            base = f"{self.url}{FILES}"
            out["render_url"] = f"{base}/{task.id}/render.jpg"
            out["mesh_url"] = f"{base}/mesh/{task.id}/mesh.obj"
            out["pbr_components"] = {name: f"{base}/texture/{task.id}/{name}.jpg"
                                     for name in MAP_FILES}
        elif kind == "failed" and reason:
            out[self.failure_field] = reason
        with self.lock:
            out["balance"] = self.balance
        return out

    def _word(self, kind: str) -> str:
        return STATUS_WORDS[self.status_style][kind]

    def _send(self, task: SimTask, payload: dict[str, Any]) -> None:
        url = str(task.data["result_url"])
        if task.data["_webhook"] == "wrong_token":
            url = _with_other_token(url)
        data = json.dumps(payload).encode()
        for attempt in range(self.webhook_retries + 1):
            if attempt and self._stopping.wait(self.retry_delay):
                return
            status, answer = self._post(url, data)
            with self.lock:
                self.sent.append(Sent(task.data["order"], url, payload, status, answer,
                                      time.time()))
            if status is not None and status < 300:
                return

    def _post(self, url: str, data: bytes) -> tuple[int | None, str]:
        try:
            resp = requests.post(url, data=data, timeout=5,
                                 headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            return None, type(exc).__name__
        return resp.status_code, resp.text[:200]

    # ---- files ---------------------------------------------------------------------------------

    def _map(self, req: Request) -> Response:
        role = MAP_FILES.get(req.params["name"])
        if role is None or self.task(req.params["task_id"]) is None:
            return Response(404, b"Not found", "text/plain")
        return Response(200, self.image(role), "image/png",
                        {"Content-Disposition": 'attachment; filename="../../outside.jpg"'})

    def _render(self, req: Request) -> Response:
        if self.task(req.params["task_id"]) is None:
            return Response(404, b"Not found", "text/plain")
        return Response(200, self.image("base_color"), "image/png")

    def _mesh(self, req: Request) -> Response:
        task = self.task(req.params["task_id"])
        if task is None:
            return Response(404, b"Not found", "text/plain")
        with self.lock:
            mesh = self.meshes.get(task.data["order"], b"")
        return Response(200, mesh, "model/obj")

    def image(self, role: str) -> bytes:
        with self.lock:
            if role not in self._images:
                self._images[role] = map_png(role, self.map_size)
            return self._images[role]

    # ---- inspection and knobs ------------------------------------------------------------------

    def task_for(self, order: int) -> SimTask | None:
        with self.lock:
            return next((t for t in self.tasks.values() if t.data["order"] == order), None)

    def webhooks(self, order: int | None = None) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if order is None or s.order == order]

    def cancel_task(self, order: int) -> None:
        """The order was canceled on DRESSX's side: its final webhook says canceled."""
        task = self.task_for(order)
        if task is not None:
            with self.lock:
                task.canceled = True

    def env(self) -> dict[str, str]:
        return {"DRESSX_API_BASE": self.url, "DRESSX_API_KEY": self.api_key}


def _with_other_token(url: str) -> str:
    """The same result URL with its last path segment (our token) replaced."""
    parts = urlsplit(url)
    head, _, _ = parts.path.rstrip("/").rpartition("/")
    return urlunsplit(parts._replace(path=f"{head}/{secrets.token_urlsafe(24)}"))
