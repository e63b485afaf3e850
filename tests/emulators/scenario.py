"""Scenario, as docs/providers.md §2 describes it.

Routes (under ``/v1`` as the real base URL has it, and at the root too, so either base works):

* ``GET /models/{id}`` → ``{"model": {"id", "type", "capabilities", ...}}``: the type sets the
  allowed sizes; ``capabilities`` lists ``txt2img_texture`` for trained texture models, while
  current texture models have ``type`` custom (``MODELS``).
* ``POST /generate/txt2img-texture`` (only for a model with the ``txt2img_texture``
  capability): Joi-style validation, as the live service answers (``"modelId" must be a
  string``, ``"seed" must be a string``); unknown fields are refused (``"x" is not allowed``)
  so a client cannot rely on guessed names. ``?dryRun=true`` prices it and answers HTTP 269
  ``{"creativeUnitsCost", "creativeUnitsDiscount"}``.
* ``POST /generate/custom/{modelId}`` for ``type`` custom models, body ``{"prompt"}``: a job of
  type ``custom`` whose outputs are a base texture, plus (for a PATINA-like model) its own
  ``texture-albedo/-normal/-smoothness/-metallic/-height`` maps.
* ``POST /generate/texture`` ``{"texture": assetId}`` and its documented equivalent
  ``POST /generate/custom/model_sc-texture-converter`` (the same body; either can be switched
  off to answer 404): one job (type ``texture``) whose outputs are a parent asset and its maps
  ``texture-albedo/-normal/-smoothness/-metallic/-height/-ao/-edge``, in a shuffled order.
* ``GET /jobs/{id}`` → ``{"job": {"jobId", "jobType", "status", "progress" 0–1, "metadata":
  {"input", "assetIds" (on success only), "error" (on failure)}, ...}}``; statuses follow the
  clock: pending → queued → warming-up → in-progress → finalizing → success | failure | canceled.
* ``POST /jobs/{id}/action`` ``{"action": "cancel"}``: only ``inference`` jobs can be canceled;
  any other job answers 400 and runs on.
* ``GET /assets/{id}`` → ``{"asset": {"id", "kind", "status", "url", "mimeType", "metadata":
  {"type", ...}, "properties": {...}}}``, with a signed ``url`` that expires after ``url_ttl``
  seconds (then 403, as a CDN answers); the files themselves need no auth.

Auth: HTTP Basic base64(key:secret), or ``Authorization: Bearer <bearer_token>``. Errors are
``{"reason": ..., "traceId": ...}``; a 429 may carry ``remainingSeconds`` (``rate_limit_next``).

Images: each sample's base texture is genuinely seamless (integer periods across the tile) and
different per sample; the maps are solid fills per type and sample (``map_fill``), so a test can
tell them apart by pixels and check roughness == 255 - smoothness.

Choices where the sources are silent ([I]): 402 "Not enough creative units" when the balance is
short; cancel of a finished job is 400; `projectId` is recorded, not enforced; a map job's parent
asset has type "texture"; assets of unfinished jobs answer 404. By hand: key, secret and model id
are printed by ``env()`` (defaults: ``default_key``, ``default_secret``, ``default_model``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import random
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .base import Emulator, Request, Response, SimTask, json_response, png_bytes

V1 = r"(?:/v1)?"
TXT2IMG = "/generate/txt2img-texture"
TEXTURE = "/generate/texture"
CONVERTER = "/generate/custom/model_sc-texture-converter"
MAP_TYPES = ("texture-albedo", "texture-normal", "texture-smoothness", "texture-metallic",
             "texture-height", "texture-ao", "texture-edge")
BASE_TYPE = "inference-txt2img-texture"
TXT2IMG_FIELDS = frozenset({
    "modelId", "prompt", "negativePrompt", "negativePromptStrength", "seed", "modelEpoch",
    "hideResults", "scheduler", "intermediateImages", "concepts", "guidance",
    "numInferenceSteps", "numSamples", "width", "height", "baseModelId", "aspectRatio",
})
TEXTURE_FIELDS = frozenset({"texture", "polished", "angular", "raised", "shiny", "invert",
                            "saveFlipbook", "defaultParameters"})
CONVERTER_FIELDS = frozenset({"texture", "polished", "angular", "raised", "shiny", "invert",
                              "defaultParameters"})
CUSTOM = "/generate/custom/"
CUSTOM_FIELDS = frozenset({"prompt"})
SIZE_LIMITS = {"sd-xl": (512, 2048), "sd-xl-lora": (512, 2048), "sd-xl-composition": (512, 2048),
               "sd-1_5": (64, 1024)}
TEXTURE_CAPS = ("txt2img", "txt2img_texture")
# model id -> (type, capabilities, what a custom model returns: "pbr" = its own maps, "image")
DEFAULT_MODELS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "model_emulator_sdxl": ("sd-xl", TEXTURE_CAPS, ""),
    "model_emulator_sd15": ("sd-1_5", TEXTURE_CAPS, ""),
    "model_emulator_flux": ("flux.1", TEXTURE_CAPS, ""),
    "model_emulator_photo": ("sd-xl", ("txt2img",), ""),  # makes images, not textures
    "model_emulator_patina": ("custom", (), "pbr"),  # a current texture model with its maps
    "model_emulator_tiles": ("custom", (), "image"),  # a custom model making one texture
}
TEXTURE_COST = 2

# Per-sample colours of the base textures (sample n uses PALETTE[n % len]).
PALETTE = ((150, 90, 60), (60, 110, 160), (90, 150, 70), (160, 150, 60), (120, 70, 140))
# Map fills for sample 0; sample n shifts them (see `map_fill`).
MAP_FILLS = {
    "texture-normal": (128, 128, 255),
    "texture-smoothness": (200, 200, 200),
    "texture-metallic": (40, 40, 40),
    "texture-height": (110, 110, 110),
    "texture-ao": (230, 230, 230),
    "texture-edge": (15, 15, 15),
}


def map_fill(kind: str, sample: int) -> tuple[int, int, int]:
    """The solid colour of map `kind` made from sample `sample`'s image."""
    r, g, b = MAP_FILLS[kind]
    shift = 10 * (sample % 6)
    if kind == "texture-normal":
        return (r + shift, g, b)
    return (r - shift, g - shift, b - shift) if r > 100 else (r + shift, g + shift, b + shift)


def smoothness_value(sample: int) -> int:
    return map_fill("texture-smoothness", sample)[0]


def seamless_texture(seed: int, sample: int, width: int, height: int) -> np.ndarray:
    """A tileable RGB image: sums of sines with whole periods across the tile, so the last
    column flows into the first exactly as any column into the next."""
    rng = random.Random(f"{seed}:{sample}")
    x = np.arange(width)[None, :] / width
    y = np.arange(height)[:, None] / height
    wave = np.zeros((height, width))
    for _ in range(3):
        kx, ky = rng.randint(1, 4), rng.randint(1, 4)
        wave += np.sin(2 * math.pi * (kx * x + ky * y) + rng.uniform(0, 2 * math.pi))
    wave /= 3.0
    base = np.array(PALETTE[sample % len(PALETTE)], dtype=float)
    tint = np.array([1.0, 0.8, 0.6]) if sample % 2 == 0 else np.array([0.6, 0.8, 1.0])
    rgb = base[None, None, :] + 45.0 * wave[..., None] * tint[None, None, :]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def albedo_of(image: np.ndarray) -> np.ndarray:
    """The "de-lit" albedo the map maker makes: distinct from the image, still seamless."""
    return np.clip(image.astype(int) - 25, 0, 255).astype(np.uint8)


def rgb_png(pixels: np.ndarray) -> bytes:
    rows = np.ascontiguousarray(pixels, dtype=np.uint8)
    return png_bytes(rows.shape[1], rows.shape[0], lambda y: rows[y].tobytes())


def gray_png(width: int, height: int, value: int) -> bytes:
    """An 8-bit grayscale PNG (colour type 0), as single-channel maps often are."""
    raw = b"".join(b"\x00" + bytes([value]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(data, zlib.crc32(kind))
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def gray_jpeg(width: int, height: int, value: int) -> bytes:
    """A real baseline grayscale JPEG of one solid value (DC-only blocks, quantisation 1)."""
    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    dc_bits = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]  # the standard luminance DC
    dc_values = list(range(12))
    ac_bits = [1] + [0] * 15  # one symbol, EOB (0x00), code "0": every block is flat
    ac_values = [0]
    dc_codes = _canonical_codes(dc_bits, dc_values)
    eob = _canonical_codes(ac_bits, ac_values)[0]
    bits = _BitWriter()
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    previous = 0
    for _ in range(blocks):
        dc = 8 * (value - 128)
        diff, previous = dc - previous, dc
        category = abs(diff).bit_length()
        bits.write(*dc_codes[category])
        if category:
            bits.write(diff if diff > 0 else diff + (1 << category) - 1, category)
        bits.write(*eob)
    out = b"\xff\xd8"
    out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += segment(0xDB, b"\x00" + b"\x01" * 64)
    out += segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    out += segment(0xC4, b"\x00" + bytes(dc_bits) + bytes(dc_values))
    out += segment(0xC4, b"\x10" + bytes(ac_bits) + bytes(ac_values))
    out += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return out + bits.finish() + b"\xff\xd9"


def _canonical_codes(bits: list[int], values: list[int]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length) of a JPEG Huffman table given by its counts per length."""
    codes: dict[int, tuple[int, int]] = {}
    code, k = 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class _BitWriter:
    def __init__(self) -> None:
        self.acc, self.n, self.out = 0, 0, bytearray()

    def write(self, value: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self._byte()

    def _byte(self) -> None:
        self.out.append(self.acc)
        if self.acc == 0xFF:
            self.out.append(0)  # byte stuffing
        self.acc, self.n = 0, 0

    def finish(self) -> bytes:
        while self.n:
            self.write(1, 1)  # pad with ones
        return bytes(self.out)


@dataclass
class Asset:
    id: str
    type: str
    job_id: str
    sample: int
    seed: int
    width: int
    height: int
    source: str = ""  # for maps: the image asset they were made from
    children: list[str] = field(default_factory=list)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class ScenarioEmulator(Emulator):
    name = "scenario"
    env_prefix = "SCENARIO"
    default_key = "scn_emulator_key_4d2a9f61"
    default_secret = "scn_emulator_secret_8b1c7e03"
    default_model = "model_emulator_sdxl"

    def __init__(self, *args: Any, api_secret: str | None = None,
                 bearer_token: str = "scn_emulator_jwt_token_5e6f", url_ttl: float = 3600.0,
                 creative_units: int = 100_000, texture_route: bool = True,
                 converter_route: bool = True, texture_seconds: float | None = None,
                 models: dict[str, tuple[str, tuple[str, ...], str]] | None = None,
                 **kwargs: Any) -> None:
        self.api_secret = api_secret or self.default_secret
        self.bearer_token = bearer_token
        self.url_ttl = url_ttl
        self.creative_units = creative_units
        self.texture_route = texture_route
        self.converter_route = converter_route
        self.texture_seconds = texture_seconds
        self.models = dict(DEFAULT_MODELS if models is None else models)
        self.map_types: tuple[str, ...] = MAP_TYPES  # what a map job makes
        self.smoothness_format = "png"  # png | gray | jpeg
        self.status_words: dict[str, str] = {}  # e.g. {"success": "succeeded"}
        self.job_id_key = "jobId"  # "id" answers as in the quick-start
        self.texture_fail_message = ""
        self.remaining_seconds: float | None = None
        self.refused_cancels = 0
        self.assets: dict[str, Asset] = {}
        self._links: dict[str, float] = {}  # signature -> expiry (exact, for sub-second TTLs)
        self._secret = b"emulator-cdn-signing-key"
        self._cache: dict[str, bytes] = {}
        self._cache_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    # ---- auth and errors -----------------------------------------------------------------------

    def check_auth(self, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        token = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        return value in (f"Basic {token}", f"Bearer {self.bearer_token}")

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"reason": message, "traceId": uuid.uuid4().hex[:24]}
        if status == 429 and self.remaining_seconds is not None:
            body["remainingSeconds"] = self.remaining_seconds
        return json_response(body, status, headers)

    def unauthorized(self) -> Response:
        return self.error(401, "Unauthorized: invalid API key or secret")

    def no_route(self, req: Request) -> Response:
        return self.error(404, f"Cannot {req.method} {req.path}")

    # ---- routes --------------------------------------------------------------------------------

    def setup_routes(self) -> None:
        self.route("GET", V1 + r"/models/(?P<model_id>[^/]+)", self._model)
        self.route("POST", V1 + TXT2IMG, self._txt2img)
        self.route("POST", V1 + TEXTURE, self._maps(TEXTURE, "texture", TEXTURE_FIELDS))
        self.route("POST", V1 + CONVERTER, self._maps(CONVERTER, "texture", CONVERTER_FIELDS))
        self.route("POST", V1 + CUSTOM + r"(?P<model_id>[^/]+)", self._custom)
        self.route("GET", V1 + r"/jobs/(?P<job_id>[^/]+)", self._job)
        self.route("POST", V1 + r"/jobs/(?P<job_id>[^/]+)/action", self._action)
        self.route("GET", V1 + r"/assets/(?P<asset_id>[^/]+)", self._asset)
        self.route("GET", r"/files/(?P<asset_id>[\w-]+)\.(?P<ext>png|jpg)", self._file,
                   auth=False, is_file=True)

    def _model(self, req: Request) -> Response:
        model_id = req.params["model_id"]
        model = self.models.get(model_id)
        if model is None:
            return self.error(404, f"Model {model_id} not found")
        kind, caps, _outputs = model
        return json_response({"model": {"id": model_id, "name": model_id, "type": kind,
                                         "status": "trained", "capabilities": list(caps)}})

    # ---- txt2img-texture -----------------------------------------------------------------------

    def _txt2img(self, req: Request) -> Response:
        body = req.json
        if req.json_error or not isinstance(body, dict):
            return self.error(400, '"value" must be of type object')
        problem = self._check_txt2img(body)
        if problem:
            return problem
        model = self.models.get(body["modelId"])
        if model is None:
            return self.error(404, f"Model {body['modelId']} not found")
        kind, caps, _outputs = model
        if "txt2img_texture" not in caps:
            return self.error(400, f"Model {body['modelId']} does not support txt2img_texture")
        problem = self._check_for_model(body, kind)
        if problem:
            return problem
        samples = int(body.get("numSamples", 4))
        width, height = int(body.get("width", 512)), int(body.get("height", 512))
        cost = samples * (5 if width * height <= 1024 * 1024 else 10)
        if req.arg("dryRun") == "true":
            return json_response({"creativeUnitsCost": cost, "creativeUnitsDiscount": 0}, 269)
        with self.lock:
            if self.creative_units < cost:
                return self.error(402, "Not enough creative units")
            self.creative_units -= cost
            task = self.new_task("inference", dict(body))
            seed = body.get("seed")
            seed_value = int(seed) if isinstance(seed, str) and seed.isdigit() else (
                random.randint(0, 2**31))
            for n in range(samples):
                asset = Asset(self._new_id("asset"), BASE_TYPE, task.id, n, seed_value, width,
                              height)
                self.assets[asset.id] = asset
                task.data.setdefault("_outputs", []).append(asset.id)
            task.data["_project"] = req.arg("projectId")
        return json_response({"job": self.job_json(task), "creativeUnitsCost": cost})

    def _check_txt2img(self, body: dict[str, Any]) -> Response | None:
        for key in body:
            if key not in TXT2IMG_FIELDS:
                return self.error(400, f'"{key}" is not allowed')
        if not isinstance(body.get("modelId"), str):
            return self.error(400, '"modelId" must be a string')  # as the live service says
        if "prompt" not in body:
            return self.error(400, '"prompt" is required')
        for key in ("prompt", "negativePrompt"):
            if key in body and not isinstance(body[key], str):
                return self.error(400, f'"{key}" must be a string')
        if "seed" in body and not isinstance(body["seed"], str):
            return self.error(400, '"seed" must be a string')
        checks = (("numSamples", 1, 128, True), ("numInferenceSteps", 1, 150, True),
                  ("guidance", 0, 20, False), ("negativePromptStrength", 0, 10, False),
                  ("width", 64, 2048, True), ("height", 64, 2048, True))
        for key, lo, hi, integer in checks:
            problem = self._check_number(body, key, lo, hi, integer)
            if problem:
                return problem
        for key in ("width", "height"):
            if key in body and body[key] % 8:
                return self.error(400, f'"{key}" must be a multiple of 8')
        return None

    def _check_number(self, body: dict[str, Any], key: str, lo: float, hi: float,
                      integer: bool) -> Response | None:
        if key not in body:
            return None
        value = body[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self.error(400, f'"{key}" must be a number')
        if integer and value != int(value):
            return self.error(400, f'"{key}" must be an integer')
        if value < lo:
            return self.error(400, f'"{key}" must be greater than or equal to {lo}')
        if value > hi:
            return self.error(400, f'"{key}" must be less than or equal to {hi}')
        return None

    def _check_for_model(self, body: dict[str, Any], kind: str) -> Response | None:
        lo, hi = SIZE_LIMITS.get(kind, (64, 2048))
        for key in ("width", "height"):
            if key in body and not lo <= body[key] <= hi:
                return self.error(400, f'"{key}" must be within [{lo}, {hi}] for model type '
                                  f'{kind}')
        if kind.startswith("flux") and "guidance" in body:
            glo, ghi = (2, 5) if "pro" in kind else (0, 10)
            if not glo <= body["guidance"] <= ghi:
                return self.error(400, f'"guidance" must be within [{glo}, {ghi}] for model '
                                  f'type {kind}')
        return None

    # ---- texture maps --------------------------------------------------------------------------

    def _maps(self, path: str, field_name: str, allowed: frozenset[str]) -> Any:
        def handler(req: Request) -> Response:
            if not (self.texture_route if path == TEXTURE else self.converter_route):
                return self.no_route(req)
            return self._make_maps(req, field_name, allowed)
        return handler

    def _make_maps(self, req: Request, field_name: str, allowed: frozenset[str]) -> Response:
        body = req.json
        if req.json_error or not isinstance(body, dict):
            return self.error(400, '"value" must be of type object')
        for key in body:
            if key not in allowed:
                return self.error(400, f'"{key}" is not allowed')
        source_id = body.get(field_name)
        if not isinstance(source_id, str) or not source_id:
            return self.error(400, f"{field_name} parameter is required")
        for key in ("polished", "angular", "raised", "shiny"):
            problem = self._check_number(body, key, 0, 1, False)
            if problem:
                return problem
        source = self.ready_asset(source_id)
        if source is None:
            return self.error(404, f"Asset {source_id} not found")
        if req.arg("dryRun") == "true":
            return json_response({"creativeUnitsCost": TEXTURE_COST}, 269)
        with self.lock:
            if self.creative_units < TEXTURE_COST:
                return self.error(402, "Not enough creative units")
            self.creative_units -= TEXTURE_COST
            task = self.new_task("texture", dict(body))
            if self.texture_seconds is not None:
                task.job_seconds = self.texture_seconds
            task.fail_message = task.fail_message or self.texture_fail_message
            parent = Asset(self._new_id("asset"), "texture", task.id, source.sample,
                           source.seed, source.width, source.height, source=source.id)
            outputs = [parent.id]
            self.assets[parent.id] = parent
            for kind in self.map_types:
                child = Asset(self._new_id("asset"), kind, task.id, source.sample, source.seed,
                              source.width, source.height, source=source.id)
                self.assets[child.id] = child
                parent.children.append(child.id)
                outputs.append(child.id)
            random.Random(task.id).shuffle(outputs)  # clients must match by type, not order
            task.data["_outputs"] = outputs
            task.data["_project"] = req.arg("projectId")
        return json_response({"job": self.job_json(task), "creativeUnitsCost": TEXTURE_COST})

    # ---- custom models -------------------------------------------------------------------------

    def _custom(self, req: Request) -> Response:
        model_id = req.params["model_id"]
        model = self.models.get(model_id)
        if model is None:
            return self.error(404, f"Model {model_id} not found")
        kind, _caps, outputs = model
        if kind != "custom":
            return self.error(400, "This endpoint is not available yet for this model type; "
                              "use /generate/{inferenceType}")
        body = req.json
        if req.json_error or not isinstance(body, dict):
            return self.error(400, '"value" must be of type object')
        for key in body:
            if key not in CUSTOM_FIELDS:
                return self.error(400, f'"{key}" is not allowed')
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return self.error(400, '"prompt" is required')
        cost = 8 if outputs == "pbr" else 5
        if req.arg("dryRun") == "true":
            return json_response({"creativeUnitsCost": cost, "creativeUnitsDiscount": 0}, 269)
        with self.lock:
            if self.creative_units < cost:
                return self.error(402, "Not enough creative units")
            self.creative_units -= cost
            task = self.new_task("custom", {**body, "modelId": model_id})
            seed = random.Random(body["prompt"]).randint(0, 2**31)
            size = 1024
            image = Asset(self._new_id("asset"), BASE_TYPE, task.id, 0, seed, size, size)
            self.assets[image.id] = image
            found = [image.id]
            if outputs == "pbr":
                for map_kind in self.map_types:
                    child = Asset(self._new_id("asset"), map_kind, task.id, 0, seed, size, size,
                                  source=image.id)
                    self.assets[child.id] = child
                    image.children.append(child.id)
                    found.append(child.id)
                random.Random(task.id).shuffle(found)
            task.data["_outputs"] = found
            task.data["_project"] = req.arg("projectId")
        return json_response({"job": self.job_json(task), "creativeUnitsCost": cost})

    # ---- jobs ----------------------------------------------------------------------------------

    def _job(self, req: Request) -> Response:
        task = self.task(req.params["job_id"])
        if task is None:
            return self.error(404, f"Job {req.params['job_id']} not found")
        return json_response({"job": self.job_json(task)})

    def _action(self, req: Request) -> Response:
        task = self.task(req.params["job_id"])
        if task is None:
            return self.error(404, f"Job {req.params['job_id']} not found")
        body = req.json if isinstance(req.json, dict) else {}
        if body.get("action") != "cancel":
            return self.error(400, '"action" must be one of [cancel]')
        if task.phase()[0] in ("succeeded", "failed", "canceled"):
            return self.error(400, "Job is already finished")
        if task.kind != "inference":
            with self.lock:
                self.refused_cancels += 1
            return self.error(400, "Only inference jobs can be canceled")
        with self.lock:
            task.canceled = True
        return json_response({"job": {"jobId": task.id, "status": "canceled"}})

    def scenario_status(self, task: SimTask, now: float | None = None) -> tuple[str, float]:
        """(status word, progress 0..1) of a job right now."""
        now = time.time() if now is None else now
        phase, progress = task.phase(now)
        if phase == "queued":
            waited = now - task.created
            return ("pending" if waited < task.pending_seconds / 2 else "queued"), 0.0
        if phase == "running":
            if progress < 0.15:
                return "warming-up", 0.0
            return ("in-progress" if progress < 0.85 else "finalizing"), round(progress, 3)
        return {"succeeded": "success", "failed": "failure", "canceled": "canceled"}.get(
            phase, "failure"), (1.0 if phase == "succeeded" else 0.0)

    def job_json(self, task: SimTask) -> dict[str, Any]:
        status, progress = self.scenario_status(task)
        metadata: dict[str, Any] = {
            "input": {k: v for k, v in task.data.items() if not k.startswith("_")},
        }
        if status == "success":
            metadata["assetIds"] = list(task.data.get("_outputs", []))
        if status == "failure":
            metadata["error"] = task.fail_message
        job_id_key = self.job_id_key
        return {
            job_id_key: task.id,
            "jobType": task.kind,
            "status": self.status_words.get(status, status),
            "progress": progress,
            "metadata": metadata,
            "createdAt": _iso(task.created),
            "updatedAt": _iso(time.time()),
        }

    # ---- assets and files ----------------------------------------------------------------------

    def ready_asset(self, asset_id: str) -> Asset | None:
        """The asset, once the job that makes it has succeeded."""
        with self.lock:
            asset = self.assets.get(asset_id)
        if asset is None:
            return None
        task = self.task(asset.job_id)
        if task is None or task.phase()[0] != "succeeded":
            return None
        return asset

    def _asset(self, req: Request) -> Response:
        asset = self.ready_asset(req.params["asset_id"])
        if asset is None:
            return self.error(404, f"Asset {req.params['asset_id']} not found")
        ext, mime = self._format(asset)
        data = self.file_bytes(asset)
        return json_response({"asset": {
            "id": asset.id,
            "kind": "image",
            "status": "success",
            "url": self.signed_url(asset, ext),
            "mimeType": mime,
            "metadata": {"type": asset.type, "parentJobId": asset.job_id,
                         "seed": str(asset.seed), "kind": "image",
                         **({"parentId": asset.source} if asset.source else {})},
            "properties": {"width": asset.width, "height": asset.height, "size": len(data)},
            "children": list(asset.children),
        }})

    def _format(self, asset: Asset) -> tuple[str, str]:
        if asset.type == "texture-smoothness" and self.smoothness_format == "jpeg":
            return "jpg", "image/jpeg"
        return "png", "image/png"

    def signed_url(self, asset: Asset, ext: str) -> str:
        expires = time.time() + self.url_ttl
        path = f"/files/{asset.id}.{ext}"
        stamp = str(math.ceil(expires))
        signature = hmac.new(self._secret, f"{path}|{expires!r}".encode(),
                             hashlib.sha256).hexdigest()[:40]
        with self.lock:
            self._links[signature] = expires
        return (f"{self.url}{path}?Expires={stamp}&Signature={signature}"
                f"&Key-Pair-Id=APKAEMULATOR")

    def _file(self, req: Request) -> Response:
        signature = req.arg("Signature", "") or ""
        with self.lock:
            expires = self._links.get(signature)
        if expires is None or expires < time.time():
            return Response(403, b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                            b"<Message>Request has expired</Message></Error>", "application/xml")
        asset = self.ready_asset(req.params["asset_id"])
        if asset is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        _ext, mime = self._format(asset)
        headers = {"Content-Disposition": 'attachment; filename="../../outside.png"'}
        return Response(200, self.file_bytes(asset), mime, headers)

    def file_bytes(self, asset: Asset) -> bytes:
        with self._cache_lock:
            if asset.id not in self._cache:
                self._cache[asset.id] = self._render(asset)
            return self._cache[asset.id]

    def _render(self, asset: Asset) -> bytes:
        size = self.map_size
        if asset.type == "texture-smoothness" and self.smoothness_format != "png":
            value = smoothness_value(asset.sample)
            if self.smoothness_format == "jpeg":
                return gray_jpeg(size, size, value)
            return gray_png(size, size, value)
        return rgb_png(self.pixels(asset))

    def pixels(self, asset: Asset) -> np.ndarray:
        """What an asset's image holds (RGB), for tests to compare against."""
        size = self.map_size
        image = seamless_texture(asset.seed, asset.sample, size, size)
        if asset.type in (BASE_TYPE, "texture"):
            return image
        if asset.type == "texture-albedo":
            return albedo_of(image)
        return np.broadcast_to(np.array(map_fill(asset.type, asset.sample), np.uint8),
                               (size, size, 3)).copy()

    # ---- knobs and inspection ------------------------------------------------------------------

    def rate_limit_next(self, count: int = 1, remaining_seconds: float = 2.0, *,
                        method: str | None = None, path: str | None = None) -> None:
        """The next `count` matching requests answer 429 with `remainingSeconds` and no
        Retry-After header, as Scenario's throttling does."""
        self.remaining_seconds = remaining_seconds
        self.fail_next(429, count, method=method, path=path, message="Too many requests",
                       retry_after=None)

    def fail_texture_jobs(self, message: str = "Texture generation failed") -> None:
        """Map jobs created from now on end in failure with that message."""
        with self.lock:
            self.texture_fail_message = message

    def jobs_of(self, kind: str) -> list[SimTask]:
        with self.lock:
            return sorted((t for t in self.tasks.values() if t.kind == kind),
                          key=lambda t: t.created)

    def asset_of_type(self, job: SimTask, kind: str) -> Asset:
        return next(self.assets[a] for a in job.data["_outputs"] if self.assets[a].type == kind)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:20]}"

    def new_task(self, kind: str, data: dict[str, Any]) -> SimTask:
        task = super().new_task(kind, data)
        with self.lock:  # Scenario's ids look like "job_…", not bare UUIDs
            self.tasks.pop(task.id)
            task.id = self._new_id("job")
            self.tasks[task.id] = task
        return task

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.assets.clear()
            self._links.clear()
            self.texture_fail_message = ""
            self.remaining_seconds = None
        with self._cache_lock:
            self._cache.clear()

    def env(self) -> dict[str, str]:
        return {"SCENARIO_API_BASE": f"{self.url}/v1", "SCENARIO_API_KEY": self.api_key,
                "SCENARIO_API_SECRET": self.api_secret, "SCENARIO_MODEL_ID": self.default_model}
