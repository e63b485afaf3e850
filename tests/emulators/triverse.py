"""Triverse, as docs/providers.md §3 describes it.

Routes (mounted at the root; `TRIVERSE_API_BASE` replaces `https://api.triverse.ai/api/v1`):
`POST /upload/model?modelVariant=…` and `POST /upload/image` (multipart field `file`, type and
size checked, 10 uploads per 60 s together → code 2000 / HTTP 429), `POST
/upload/presigned-get-url`, `POST /tasks/text-to-texture`, `POST /tasks/texture-model`,
`POST /tasks/pricing/quote`, `GET /tasks/{uuid}`, `GET /tasks/url/{uuid}`,
`GET /tasks/download/{uuid}`, `GET /users/balance`, and signed storage links under `/storage/…`
(no auth; `Expires` and `Signature` checked). Every answer is the `{code, message, data}`
envelope with the matching HTTP status; errors are `{code, message, suggestion}`.

Behaviour:
* `text-to-texture` refuses a `file_key` as `model_url`: it must be an http(s) URL, and the
  emulator really downloads it (its own presigned links over HTTP; other hosts only if a test
  `publish`ed them — the emulator never reaches beyond loopback). An unreachable URL is code 1004
  at create (the error table lists "URL inaccessible" under 1004), or, with
  ``fetch_model_at="task"``, a FAILED task.
* `client_order_id` is idempotent: the same id gives back the same task, charged once
  (``order_id_on_text=False``: text-to-texture refuses it with 1004 "Invalid parameters").
* Read-after-write: a new task answers 1006/404 to reads for ``read_lag`` seconds, unless the
  read carries the header the create answer named (``read_after_write_header``, value the task
  uuid) and ``raw_header_honoured``; ``raw_hints=False`` leaves both hints out (null).
* A full queue (``queue_limit`` unfinished tasks) answers a create with 2000/429.
* Credits are frozen at create, charged on success and released on failure (§3.4).
* The result is a textured GLB embedding known, distinct images: base color and normal are the
  framework's role images; the packed metallicRoughness PNG holds roughness in G and metallic in
  B (`MR_PIXELS`), R is occlusion (the material's occlusionTexture points at the same image, as
  ORM packing does). With ``result_topology="different"`` the geometry is a regridded box of
  the uploaded mesh's bounds with its own UVs (another vertex count), as a remeshing service
  returns; ``"same"`` keeps the uploaded mesh vertex for vertex; ``"surface"`` and
  ``"surface-decimated"`` return the uploaded surface (or 30 % of its triangles) with UVs of
  their own and maps whose texels encode their positions (`surface.py`).

Choices where the sources are silent [I]: the auth error code (1001); codes for generic
`fail_next` statuses (400→1004, 403→1003, 404→1005, 409→2005, 429→2000, 500→5000,
502–504→5003); prices
(20/30/40 credits for 1k/2k/4k textures); flow names "text-to-texture" and "texture-model";
`/tasks/url` on a finished-but-failed task answers 2005; unknown routes answer 1005/404.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import ipaddress
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from .base import (
    MARKER,
    ROLE_PIXELS,
    Emulator,
    Fault,
    Request,
    Response,
    SimTask,
    json_response,
    map_png,
    png_bytes,
)
from .glb import make_glb, meshy_uvs, read_accessor, read_glb, write_glb

MB = 1 << 20
# Documented codes and their HTTP statuses [providers.md §3.6]; 1001/1003 are inferred.
CODE_STATUS = {
    1001: 401, 1003: 403, 1004: 400, 1005: 404, 1006: 404, 2000: 429, 2002: 400, 2004: 400,
    2005: 409, 2008: 400, 2010: 403, 4042: 404, 5003: 503, 5004: 500, 5005: 500,
}
_STATUS_CODE = {400: 1004, 401: 1001, 403: 1003, 404: 1005, 409: 2005, 429: 2000, 500: 5000,
                502: 5003, 503: 5003, 504: 5003}
SUGGESTIONS = {
    1004: "Check the request parameters.",
    2000: "Please slow down and retry later.",
    2004: "Upload a supported file type.",
    2008: "Modify the content and try again.",
    2010: "Please recharge your credits.",
}
MODEL_EXTS = (".glb", ".gltf", ".obj", ".fbx", ".stl")
IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
FLOWS = ("text-to-texture", "texture-model", "image-to-model", "text-to-model")
STATUS = {"queued": "QUEUED", "running": "RUNNING", "succeeded": "SUCCESS", "failed": "FAILED",
          "canceled": "CANCELLED", "expired": "SUCCESS"}
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The packed metallicRoughness image: (fill, marker) as RGB. R = occlusion (white: unoccluded),
# G = roughness, B = metallic: two known, different gray levels, taken from the role images.
MR_PIXELS = (
    (255, ROLE_PIXELS["roughness"][0][0], ROLE_PIXELS["metallic"][0][0]),
    (255, ROLE_PIXELS["roughness"][1][0], ROLE_PIXELS["metallic"][1][0]),
)


def price(texture_size: int) -> int:
    return 20 if texture_size <= 1024 else 30 if texture_size <= 2048 else 40


def mr_png(size: int = 64) -> bytes:
    fill, mark = MR_PIXELS
    m = min(MARKER, size // 2)
    marked = bytes(mark) * m + bytes(fill) * (size - m)
    plain = bytes(fill) * size
    return png_bytes(size, size, lambda y: marked if y < m else plain)


@dataclass
class CodeFault(Fault):
    code: int = 0


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def parse_multipart(content_type: str, raw: bytes) -> dict[str, Part]:
    """A form-data body's parts by field name (ValueError if it is not one)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.lower().startswith("multipart/form-data") or not m:
        raise ValueError("not multipart/form-data")
    delim = b"--" + m.group(1).encode("latin-1")
    parts: dict[str, Part] = {}
    chunks = raw.split(delim)
    if len(chunks) < 3:
        raise ValueError("no parts")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed part")
        body = body.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disp = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disp)
        filename = re.search(r'\bfilename="([^"]*)"', disp)
        if name:
            parts[name.group(1)] = Part(name.group(1), filename.group(1) if filename else None,
                                        headers.get("content-type", ""), body)
    return parts


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00",
                                                                                     "Z")


class TriverseEmulator(Emulator):
    name = "triverse"
    env_prefix = "TRIVERSE"
    default_key = "tv_emulator_key_5c2e8a91d4f7b036"

    def __init__(self, *args: Any, credits: int = 1000, upload_limit: int = 10,
                 upload_window: float = 60.0, rate_limit_retry_after: str | None = None,
                 queue_limit: int = 20, max_model_bytes: int = 200 * MB,
                 max_image_bytes: int = 50 * MB, url_ttl: float = 3600.0,
                 result_topology: str = "same", presign_field: str = "download_url",
                 legacy_fields: bool = False, error_shape: str = "object",
                 balance_route: bool = True, url_route: bool = True, quote_route: bool = True,
                 url_in_envelope: bool = True, fetch_model_at: str = "create",
                 embed_images: str = "bufferView", read_lag: float = 0.3,
                 raw_hints: bool = True, raw_header_honoured: bool = True,
                 order_id_on_text: bool = True, **kwargs: Any) -> None:
        self.credits = credits
        self.upload_limit = upload_limit
        self.upload_window = upload_window
        self.rate_limit_retry_after = rate_limit_retry_after
        self.queue_limit = queue_limit
        self.max_model_bytes = max_model_bytes
        self.max_image_bytes = max_image_bytes
        self.url_ttl = url_ttl
        self.result_topology = result_topology
        self.presign_field = presign_field
        self.legacy_fields = legacy_fields
        self.error_shape = error_shape
        self.balance_route = balance_route
        self.url_route = url_route
        self.quote_route = quote_route
        self.url_in_envelope = url_in_envelope
        self.fetch_model_at = fetch_model_at
        self.embed_images = embed_images
        # Read-after-write: a new task is not readable for `read_lag` seconds, unless the read
        # carries `raw_header` with the task uuid (when honoured); the create answer gives the
        # hints when `raw_hints`.
        self.read_lag = read_lag
        self.raw_hints = raw_hints
        self.raw_header = "X-Triverse-Read-After-Write"
        self.raw_header_honoured = raw_header_honoured
        self.order_id_on_text = order_id_on_text  # text-to-texture takes client_order_id [?]
        self.not_visible_answers = 0
        self.moderate_images = False  # uploads of images are refused as unsafe (2008)
        self.no_assets = False  # succeeded tasks have nothing to download (4042)
        self.task_fail_code: int | None = None
        self.user_id = "64e96053-76ab-4e9c-bd82-2def925b53bc"
        self.files: dict[str, tuple[bytes, str]] = {}  # file_key -> (content, "model"|"image")
        self.public: dict[str, bytes] = {}  # "the internet": URLs a test published
        self.orders: dict[str, str] = {}  # client_order_id -> task id
        self.upload_times: collections.deque[float] = collections.deque()
        self.lose_creates = 0
        self._secret = b"triverse-emulator-signing"
        self._build_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    # ---- routes --------------------------------------------------------------------------------

    def setup_routes(self) -> None:
        tid = r"(?P<task_id>[0-9a-f-]{36})"
        self.route("POST", "/upload/model", self._upload_model)
        self.route("POST", "/upload/image", self._upload_image)
        self.route("POST", "/upload/presigned-get-url", self._presign)
        self.route("POST", "/tasks/text-to-texture", self._text_to_texture)
        self.route("POST", "/tasks/texture-model", self._texture_model)
        self.route("POST", "/tasks/pricing/quote", self._quote)
        self.route("GET", f"/tasks/url/{tid}", self._result_url)
        self.route("GET", f"/tasks/download/{tid}", self._download, is_file=True)
        self.route("GET", f"/tasks/{tid}", self._get)
        self.route("GET", "/users/balance", self._balance)
        self.route("GET", r"/storage/(?P<key>.+)", self._storage, auth=False, is_file=True)

    # ---- envelope ------------------------------------------------------------------------------

    def ok(self, data: Any, status: int = 200) -> Response:
        return json_response({"code": 0, "message": "success", "data": data}, status)

    def fail(self, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {"code": code, "message": message,
                "suggestion": SUGGESTIONS.get(code, "Please try again later.")}
        return json_response(body, CODE_STATUS.get(code, 500), headers)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        code = _STATUS_CODE.get(status, 5000 if status >= 500 else 1004)
        body = {"code": code, "message": message,
                "suggestion": SUGGESTIONS.get(code, "Please try again later.")}
        return json_response(body, status, headers)

    def unauthorized(self) -> Response:
        return self.fail(1001, "Invalid or missing API key.")

    def no_route(self, req: Request) -> Response:
        return self.fail(1005, "Not Found")

    def _apply_early(self, fault: Fault) -> Response | None:
        if isinstance(fault, CodeFault):
            return self.fail(fault.code, fault.message or f"Error {fault.code}", fault.headers)
        return super()._apply_early(fault)

    # ---- knobs ---------------------------------------------------------------------------------

    def fail_code(self, code: int, count: int = 1, *, method: str | None = None,
                  path: str | None = None, message: str = "") -> None:
        """Answer the next matching requests with a documented Triverse code (and its status)."""
        self._add(CodeFault("status", count, method, path, CODE_STATUS.get(code, 500), message,
                            code=code))

    def fail_tasks(self, message: str = "Internal server error.",
                   code: int | None = None) -> None:
        """Tasks created from now on end FAILED with this error (e.g. 2008 content safety)."""
        with self.lock:
            self.task_fail_message = message
            self.task_fail_code = code

    def lose_create_answers(self, count: int = 1) -> None:
        """Create the task, then drop the connection: the client never hears of it."""
        with self.lock:
            self.lose_creates += count

    def publish(self, url: str, data: bytes) -> None:
        """Make `url` downloadable for the emulated service (a public CDN in a test)."""
        with self.lock:
            self.public[url] = data

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.files.clear()
            self.orders.clear()
            self.upload_times.clear()
            self.lose_creates = 0
            self.task_fail_code = None

    # ---- uploads -------------------------------------------------------------------------------

    def _rate_limited(self) -> Response | None:
        with self.lock:
            now = time.monotonic()
            while self.upload_times and self.upload_times[0] <= now - self.upload_window:
                self.upload_times.popleft()
            if len(self.upload_times) >= self.upload_limit:
                headers = ({"Retry-After": self.rate_limit_retry_after}
                           if self.rate_limit_retry_after else None)
                return self.fail(2000, "Upload rate limit exceeded: at most "
                                 f"{self.upload_limit} uploads per "
                                 f"{self.upload_window:g} seconds.", headers)
            self.upload_times.append(now)
        return None

    def _file_part(self, req: Request) -> tuple[Part | None, Response | None]:
        try:
            parts = parse_multipart(req.headers.get("content-type", ""), req.raw)
        except ValueError:
            return None, self.fail(1004, "Expected multipart/form-data with a 'file' field.")
        part = parts.get("file")
        if part is None or part.filename is None:
            return None, self.fail(1004, "Field 'file' is required.")
        return part, None

    def _new_key(self, ext: str) -> str:
        day = datetime.now(UTC).strftime("%Y%m%d")
        return f"tasks/uid_{self.user_id}/{day}/{uuid.uuid4()}{ext}"

    def _upload_model(self, req: Request) -> Response:
        variant = req.arg("modelVariant", "geometry")
        if variant not in ("geometry", "textured"):
            return self.fail(1004, "modelVariant must be 'geometry' or 'textured'.")
        part, problem = self._file_part(req)
        if problem or part is None:
            return problem or self.fail(1004, "Field 'file' is required.")
        name = (part.filename or "").lower()
        ext = name[name.rfind("."):] if "." in name else ""
        if ext not in MODEL_EXTS:
            return self.fail(2004, "The file type is unsupported.")
        if len(part.data) > self.max_model_bytes:
            return self.fail(1004, f"File too large (maximum {self.max_model_bytes // MB} MB).")
        if ext == ".glb":
            try:
                read_glb(part.data)
            except ValueError:
                return self.fail(1004, "The model file is not a valid GLB.")
        limited = self._rate_limited()
        if limited:
            return limited
        key = self._new_key(ext)
        with self.lock:
            self.files[key] = (part.data, "model")
        return self.ok({"file_key": key})

    def _upload_image(self, req: Request) -> Response:
        part, problem = self._file_part(req)
        if problem or part is None:
            return problem or self.fail(1004, "Field 'file' is required.")
        kind = sniff_image(part.data)
        if part.content_type.lower() not in IMAGE_TYPES or kind != IMAGE_TYPES[
                part.content_type.lower()]:
            return self.fail(2004, "The file type is unsupported.")
        if len(part.data) > self.max_image_bytes:
            return self.fail(1004, f"File too large (maximum {self.max_image_bytes // MB} MB).")
        if self.moderate_images:
            return self.fail(2008, "The image did not pass content safety review.")
        limited = self._rate_limited()
        if limited:
            return limited
        key = self._new_key({"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[kind])
        with self.lock:
            self.files[key] = (part.data, "image")
        return self.ok({"file_key": key})

    def _presign(self, req: Request) -> Response:
        body = req.json if isinstance(req.json, dict) else {}
        key = body.get("file_key")
        if not isinstance(key, str) or not key:
            return self.fail(1004, "file_key is required.")
        if key not in self.files:
            return self.fail(1005, "Resource not found or no permission.")
        expires = int(time.time() + self.url_ttl)
        url = self.signed_url(key, expires)
        return self.ok({self.presign_field: url, "expires_at": iso(expires)})

    # ---- storage links -------------------------------------------------------------------------

    def _sign(self, key: str, expires: str) -> str:
        return hmac.new(self._secret, f"{key}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_url(self, key: str, expires: int | None = None) -> str:
        exp = str(int(expires if expires is not None else time.time() + self.url_ttl))
        return (f"{self.url}/storage/{quote(key)}?Expires={exp}"
                f"&Signature={self._sign(key, exp)}")

    def _storage(self, req: Request) -> Response:
        key = unquote(req.params["key"])
        expires = req.arg("Expires", "0") or "0"
        good = hmac.compare_digest(req.arg("Signature", "") or "", self._sign(key, expires))
        if not good or not expires.isdigit() or int(expires) < time.time():
            return Response(403, b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                            b"<Message>Request has expired</Message></Error>", "application/xml")
        headers = {"Content-Disposition": 'attachment; filename="../../outside.glb"'}
        m = re.fullmatch(r"results/(?P<task_id>[0-9a-f-]{36})\.glb", key)
        if m:
            task = self.task(m.group("task_id"))
            if task is None or task.phase()[0] != "succeeded":
                return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
            return Response(200, self.result_glb(task), "model/gltf-binary", headers)
        with self.lock:
            entry = self.files.get(key)
        if entry is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return Response(200, entry[0], "application/octet-stream", headers)

    def _fetch(self, url: str) -> bytes | None:
        """What the service's servers would download from `url` (None: inaccessible)."""
        with self.lock:
            if url in self.public:
                return self.public[url]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not _is_loopback(parts.hostname or ""):
            return None  # never beyond loopback: an unpublished outside URL is unreachable
        try:
            with _OPENER.open(url, timeout=5) as resp:
                return resp.read(self.max_model_bytes + 1)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    # ---- tasks ---------------------------------------------------------------------------------

    def _body(self, req: Request) -> tuple[dict[str, Any], Response | None]:
        if req.json_error or not isinstance(req.json, dict):
            return {}, self.fail(1004, "Invalid request body: expected a JSON object.")
        return req.json, None

    def _check_common(self, body: dict[str, Any]) -> Response | None:
        size = body.get("texture_size", 1024)
        if isinstance(size, bool) or not isinstance(size, int) or not 1024 <= size <= 4096:
            return self.fail(1004, "texture_size must be an integer between 1024 and 4096.")
        if "polygon_limit" in body:
            limit = body["polygon_limit"]
            if isinstance(limit, bool) or not isinstance(limit, int) or not (
                    1000 <= limit <= 1_500_000):
                return self.fail(1004, "polygon_limit must be between 1000 and 1500000.")
        if body.get("model_version", "v2") not in ("v1", "v2"):
            return self.fail(1004, "model_version must be 'v1' or 'v2'.")
        order = body.get("client_order_id")
        if order is not None and (not isinstance(order, str) or not ORDER_ID.match(order)):
            return self.fail(1004, "client_order_id must be 1-64 characters [A-Za-z0-9_-].")
        if "allow_duplicate" in body and not isinstance(body["allow_duplicate"], bool):
            return self.fail(1004, "allow_duplicate must be a boolean.")
        return None

    def _text_to_texture(self, req: Request) -> Response:
        body, problem = self._body(req)
        if problem:
            return problem
        prompt = body.get("text_prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return self.fail(1004, "text_prompt is required.")
        url = body.get("model_url")
        if not isinstance(url, str) or not url:
            return self.fail(1004, "model_url is required.")
        if not re.match(r"^https?://", url):
            return self.fail(1004, "model_url must be a publicly accessible URL (not a "
                             "file_key); use the Presigned Download URL endpoint.")
        if "client_order_id" in body and not self.order_id_on_text:
            return self.fail(1004, "Invalid parameters.")
        return self._check_common(body) or self._create(req, "text-to-texture", body,
                                                        {"model": url})

    def _texture_model(self, req: Request) -> Response:
        body, problem = self._body(req)
        if problem:
            return problem
        for name in ("image_file", "model_file"):
            if not isinstance(body.get(name), str) or not body[name]:
                return self.fail(1004, f"{name} is required.")
        return self._check_common(body) or self._create(
            req, "texture-model", body, {"image": body["image_file"], "model": body["model_file"]})

    def _resolve(self, ref: str, kind: str) -> tuple[bytes | None, Response | None]:
        """A file_key of ours (of the right kind) or a URL the service can download."""
        if re.match(r"^https?://", ref):
            if self.fetch_model_at == "task" and kind == "model":
                return None, None  # fetched when the task starts
            data = self._fetch(ref)
            if data is None:
                return None, self.fail(1004, f"The {kind} URL is inaccessible.")
            return data, None
        with self.lock:
            entry = self.files.get(ref)
        if entry is None or entry[1] != kind:
            return None, self.fail(1005, "Resource not found or no permission.")
        return entry[0], None

    def _create(self, req: Request, flow: str, body: dict[str, Any],
                refs: dict[str, str]) -> Response:
        order = body.get("client_order_id")
        with self.lock:
            if isinstance(order, str) and order in self.orders:
                task = self.tasks[self.orders[order]]
                return self.ok(self.create_json(task))  # the same task, not charged again
        sources: dict[str, bytes | None] = {}
        for kind, ref in refs.items():
            data, problem = self._resolve(ref, kind)
            if problem:
                return problem
            sources[kind] = data
        mesh = sources.get("model")
        if mesh is not None and (len(mesh) < 4 or mesh[:4] != b"glTF"):
            return self.fail(1004, "The model file could not be read as GLB.")
        image = sources.get("image")
        if "image" in refs and (image is None or sniff_image(image) is None):
            return self.fail(2004, "The file type is unsupported.")
        cost = price(int(body.get("texture_size", 1024)))
        with self.lock:
            if cost > self.available():
                return self.fail(2010, "Insufficient credits.")
            if self._active() >= self.queue_limit:
                return self.fail(2000, "Task queue is full, please retry later.")
            task = self.new_task(flow, {k: v for k, v in body.items()})
            task.data["_cost"] = cost
            task.data["_fail_code"] = self.task_fail_code
            if isinstance(order, str):
                self.orders[order] = task.id
            if mesh is not None:
                task.files["source.glb"] = mesh
            elif self.fetch_model_at == "task":
                task.data["_model_url"] = refs["model"]
            lose = self.lose_creates > 0
            if lose:
                self.lose_creates -= 1
        if "_model_url" in task.data:
            self._fetch_later(task)
        if lose:
            return Response(drop=True)
        return self.ok(self.create_json(task))

    def _fetch_later(self, task: SimTask) -> None:
        data = self._fetch(task.data["_model_url"])
        if data is None or data[:4] != b"glTF":
            with self.lock:
                task.fail_message = "Failed to download the model from model_url."
                task.data["_fail_code"] = 1004
        else:
            task.files["source.glb"] = data

    def _active(self) -> int:
        return sum(1 for t in self.tasks.values() if t.phase()[0] in ("queued", "running"))

    def available(self) -> int:
        """Credits minus those frozen (active tasks) and charged (succeeded tasks)."""
        with self.lock:
            held = sum(t.data["_cost"] for t in self.tasks.values()
                       if t.phase()[0] in ("queued", "running", "succeeded", "expired"))
            return self.credits - held

    def charged(self) -> int:
        with self.lock:
            return sum(t.data["_cost"] for t in self.tasks.values()
                       if t.phase()[0] in ("succeeded", "expired"))

    def _quote(self, req: Request) -> Response:
        if not self.quote_route:
            return self.no_route(req)
        body, problem = self._body(req)
        if problem:
            return problem
        flow = body.get("flow_name", body.get("flowName"))
        params = body.get("params", {})
        if flow not in FLOWS:
            return self.fail(2002, "Unsupported task type.")
        if not isinstance(params, dict):
            return self.fail(1004, "params must be an object.")
        size = params.get("texture_size", 1024)
        cost = price(size if isinstance(size, int) else 1024)
        return self.ok({"flow_name": flow, "params": params, "cost_credits": cost,
                        "available_credits": self.available()})

    # ---- reads ---------------------------------------------------------------------------------

    def _get(self, req: Request) -> Response:
        task = self.task(req.params["task_id"])
        if task is None:
            return self.fail(1006, "Task not found.")
        consistent = (self.raw_header_honoured
                      and req.headers.get(self.raw_header.lower()) == task.id)
        if time.time() - task.created < self.read_lag and not consistent:
            with self.lock:
                self.not_visible_answers += 1
            return self.fail(1006, "Task not found.")  # not replicated to this reader yet
        return self.ok(self.task_json(task))

    def _finished(self, req: Request) -> tuple[SimTask | None, Response | None]:
        task = self.task(req.params["task_id"])
        if task is None:
            return None, self.fail(1006, "Task not found.")
        phase = task.phase()[0]
        if phase in ("queued", "running", "failed", "canceled"):
            return None, self.fail(2005, "Task is not in a finished state.")
        if self.no_assets or phase == "expired":
            return None, self.fail(4042, "Task succeeded but has no downloadable assets.")
        return task, None

    def _result_url(self, req: Request) -> Response:
        if not self.url_route:
            return self.no_route(req)
        task, problem = self._finished(req)
        if problem or task is None:
            return problem or self.fail(1006, "Task not found.")
        data = {"download_url": self.signed_url(f"results/{task.id}.glb"),
                "preview_url": None, "asset_id": f"asset_{task.id[:8]}", "kind": "model"}
        return self.ok(data) if self.url_in_envelope else json_response(data)

    def _download(self, req: Request) -> Response:
        task, problem = self._finished(req)
        if problem or task is None:
            return problem or self.fail(1006, "Task not found.")
        headers = {"Content-Disposition": f'attachment; filename="{task.id}.glb"'}
        return Response(200, self.result_glb(task), "application/octet-stream", headers)

    def _balance(self, req: Request) -> Response:
        if not self.balance_route:
            return self.no_route(req)
        return self.ok({"balance": self.available(), "frozen": None})

    # ---- task objects --------------------------------------------------------------------------

    def _status(self, task: SimTask, seen: tuple[str, float] | None = None) -> tuple[str, float]:
        """The wire status; `seen` is a phase the caller already read, so one answer never
        mixes two moments (a status FAILED beside the error of a task still running)."""
        phase, progress = seen or task.phase()
        status = STATUS[phase]
        if phase == "queued" and time.time() - task.created < task.pending_seconds / 2:
            status = "PENDING"
        return status, progress

    def create_json(self, task: SimTask) -> dict[str, Any]:
        status, _ = self._status(task)
        if self.legacy_fields:
            return {"taskId": task.id, "name": task.kind, "is_public": False,
                    "task_priority": 0, "input": self._input(task),
                    "costCredits": task.data["_cost"]}
        hints = self.raw_hints
        return {"task_uuid": task.id, "flow_name": task.kind, "status": status,
                "created_at": iso(task.created), "cost_credits": task.data["_cost"],
                "queue": self._queue(task),
                "read_after_write_deadline_seconds": (
                    int(self.read_lag) + 2 if hints else None),
                "read_after_write_header": self.raw_header if hints else None}

    def _input(self, task: SimTask) -> dict[str, Any]:
        return {k: v for k, v in task.data.items() if not k.startswith("_")}

    def _queue(self, task: SimTask) -> dict[str, Any]:
        if task.phase()[0] != "queued":
            return {"is_queued": False, "position": None, "estimated_wait_seconds": None}
        ahead = sum(1 for t in self.tasks.values()
                    if t.created < task.created and t.phase()[0] == "queued")
        wait = max(0.0, task.started_at() - time.time())
        return {"is_queued": True, "position": ahead + 1, "estimated_wait_seconds": round(wait)}

    def task_json(self, task: SimTask) -> dict[str, Any]:
        """`GET /tasks/{uuid}` data as it looks right now (newer shape, or the older one)."""
        phase, progress = task.phase()
        status, _ = self._status(task, (phase, progress))
        done = phase in ("succeeded", "failed", "canceled", "expired")
        error: Any = None
        if phase == "failed":
            error = (task.fail_message if self.error_shape == "string"
                     else {"code": task.data.get("_fail_code") or 5005,
                           "message": task.fail_message})
        pct = 100 if phase in ("succeeded", "expired") else int(progress * 100)
        output = ({"asset_kind": "model", "format": "glb"}
                  if phase in ("succeeded", "expired") else None)
        if self.legacy_fields:
            return {"taskId": task.id, "name": task.kind, "status": status, "progress": pct,
                    "costCredits": task.data["_cost"], "input": self._input(task),
                    "output": output, "error": error}
        return {
            "task_uuid": task.id, "flow_name": task.kind, "status": status, "progress": pct,
            "created_at": iso(task.created),
            "started_at": iso(task.started_at()) if phase != "queued" else None,
            "completed_at": iso(task.finished_at()) if done else None,
            "input": self._input(task), "output": output, "error": error,
            "queue": self._queue(task), "cost_credits": task.data["_cost"],
        }

    # ---- the result ----------------------------------------------------------------------------

    def images(self) -> dict[str, bytes]:
        """The images every result embeds, by material slot."""
        return {"base_color": map_png("base_color", self.map_size),
                "metallic_roughness": mr_png(self.map_size),
                "normal": map_png("normal", self.map_size)}

    def result_glb(self, task: SimTask) -> bytes:
        from . import surface

        with self._build_lock:
            if "result.glb" not in task.files:
                source = task.files.get("source.glb") or make_glb(
                    np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32),
                    np.array([0, 1, 2, 0, 2, 3]))
                if self.result_topology in surface.KINDS:  # content a test can check
                    task.files["result.glb"] = surface.served_glb(self, task.id, source,
                                                                  self.result_topology)
                else:
                    task.files["result.glb"] = textured_glb(
                        source, self.images(), self.result_topology == "different",
                        self.embed_images == "data_uri")
            return task.files["result.glb"]

    def env(self) -> dict[str, str]:
        return {"TRIVERSE_API_BASE": self.url, "TRIVERSE_API_KEY": self.api_key}

    def status_requests(self, task_id: str) -> int:
        return self.count("GET", rf"^/tasks/{re.escape(task_id)}$")


# --------------------------------------------------------------------------- result GLBs


def _append(gltf: dict[str, Any], binary: bytearray, data: bytes, target: int | None = None
            ) -> int:
    binary.extend(b"\x00" * (-len(binary) % 4))
    view: dict[str, Any] = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(data)}
    if target is not None:
        view["target"] = target
    binary.extend(data)
    gltf.setdefault("bufferViews", []).append(view)
    return len(gltf["bufferViews"]) - 1


def _accessor(gltf: dict[str, Any], binary: bytearray, values: np.ndarray, kind: str,
              target: int) -> int:
    view = _append(gltf, binary, np.ascontiguousarray(values).tobytes(), target)
    acc: dict[str, Any] = {"bufferView": view, "count": int(values.shape[0]), "type": kind,
                           "componentType": 5125 if values.dtype.kind == "u" else 5126}
    if kind == "VEC3":
        acc["min"] = [float(v) for v in values.min(axis=0)]
        acc["max"] = [float(v) for v in values.max(axis=0)]
    gltf.setdefault("accessors", []).append(acc)
    return len(gltf["accessors"]) - 1


def regridded_box(lo: np.ndarray, hi: np.ndarray, n: int = 4
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box over [lo, hi] with an n×n grid per face and its own UV atlas (3×2 tiles): what a
    remeshing service gives back, unrelated vertex for vertex to what was uploaded."""
    center, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-4)
    faces = [((0, 0, 1), (1, 0, 0)), ((0, 0, -1), (-1, 0, 0)), ((1, 0, 0), (0, 0, -1)),
             ((-1, 0, 0), (0, 0, 1)), ((0, 1, 0), (1, 0, 0)), ((0, -1, 0), (1, 0, 0))]
    pos: list[np.ndarray] = []
    uvs: list[tuple[float, float]] = []
    idx: list[int] = []
    steps = np.linspace(-1.0, 1.0, n + 1)
    for f, (normal, u_axis) in enumerate(faces):
        nv, uv = np.array(normal, float), np.array(u_axis, float)
        vv = np.cross(nv, uv)
        base = len(pos)
        tile_u, tile_v = (f % 3) / 3, (f // 3) / 2
        for j, sv in enumerate(steps):
            for i, su in enumerate(steps):
                pos.append(center + (nv + su * uv + sv * vv) * half)
                uvs.append((tile_u + (0.02 + 0.96 * i / n) / 3,
                            tile_v + (0.02 + 0.96 * j / n) / 2))
        for j in range(n):
            for i in range(n):
                a = base + j * (n + 1) + i
                b, c, d = a + 1, a + n + 2, a + n + 1
                idx += [a, b, c, a, c, d]
    return (np.array(pos, np.float32), np.array(idx, np.uint32), np.array(uvs, np.float32))


def textured_glb(source: bytes, images: dict[str, bytes], different: bool = False,
                 data_uris: bool = False) -> bytes:
    """The uploaded GLB (or a regridded stand-in) with a textured material embedding `images`."""
    gltf, raw = read_glb(source)
    binary = bytearray(raw)
    if different:
        gltf, binary = _regridded(gltf, raw)
    for mesh in gltf.get("meshes", []):
        for prim in mesh.get("primitives", []):
            attrs = prim.setdefault("attributes", {})
            if "TEXCOORD_0" not in attrs and "POSITION" in attrs:
                pos = read_accessor(gltf, bytes(binary), attrs["POSITION"])
                attrs["TEXCOORD_0"] = _accessor(gltf, binary, meshy_uvs(pos), "VEC2", 34962)
    textures = gltf.setdefault("textures", [])
    gltf_images = gltf.setdefault("images", [])
    samplers = gltf.setdefault("samplers", [])
    samplers.append({"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497})
    slots: dict[str, int] = {}
    for role in ("base_color", "metallic_roughness", "normal"):
        data = images[role]
        # A hostile image name: a client must never make a file name out of it.
        entry: dict[str, Any] = {"name": f"../../{role}_evil", "mimeType": "image/png"}
        if data_uris:
            entry["uri"] = "data:image/png;base64," + base64.b64encode(data).decode()
        else:
            entry["bufferView"] = _append(gltf, binary, data)
        gltf_images.append(entry)
        textures.append({"sampler": len(samplers) - 1, "source": len(gltf_images) - 1})
        slots[role] = len(textures) - 1
    materials = gltf.setdefault("materials", [])
    materials.append({
        "name": "triverse_textured",
        "pbrMetallicRoughness": {
            "baseColorTexture": {"index": slots["base_color"]},
            "metallicRoughnessTexture": {"index": slots["metallic_roughness"]},
            "metallicFactor": 1.0, "roughnessFactor": 1.0,
        },
        "normalTexture": {"index": slots["normal"]},
        "occlusionTexture": {"index": slots["metallic_roughness"]},  # ORM: R is occlusion
    })
    for mesh in gltf.get("meshes", []):
        for prim in mesh.get("primitives", []):
            prim["material"] = len(materials) - 1
    gltf.setdefault("buffers", [{}])[0] = {"byteLength": len(binary)}
    gltf["asset"] = {"version": "2.0", "generator": "triverse-emulator"}
    return write_glb(gltf, bytes(binary))


def _regridded(gltf: dict[str, Any], raw: bytes) -> tuple[dict[str, Any], bytearray]:
    """A fresh glTF whose one mesh is a regridded box of the source mesh's bounds, under the
    transform of the node that carried the source mesh."""
    points = [read_accessor(gltf, raw, p["attributes"]["POSITION"])
              for m in gltf.get("meshes", [])[:1] for p in m.get("primitives", [])
              if "POSITION" in p.get("attributes", {})]
    allpts = np.concatenate(points) if points else np.array([[-1, -1, -1], [1, 1, 1]], float)
    pos, idx, uv = regridded_box(allpts.min(axis=0), allpts.max(axis=0))
    node: dict[str, Any] = {"mesh": 0, "name": "triverse_mesh"}
    for old in gltf.get("nodes", []):
        if old.get("mesh") == 0:
            node.update({k: old[k] for k in ("translation", "rotation", "scale", "matrix")
                         if k in old})
            break
    out: dict[str, Any] = {"scene": 0, "scenes": [{"nodes": [0]}], "nodes": [node],
                           "meshes": [{"primitives": [{"attributes": {}, "mode": 4}]}],
                           "buffers": [{}], "bufferViews": [], "accessors": []}
    binary = bytearray()
    prim = out["meshes"][0]["primitives"][0]
    prim["attributes"]["POSITION"] = _accessor(out, binary, pos, "VEC3", 34962)
    prim["attributes"]["TEXCOORD_0"] = _accessor(out, binary, uv, "VEC2", 34962)
    prim["indices"] = _accessor(out, binary, idx, "SCALAR", 34963)
    return out, binary

