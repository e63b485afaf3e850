"""A hostile server on loopback: answers that trickle, never end, expand, or lie about their size.

Unlike the provider emulators it speaks raw bytes on the socket, so it can do what no honest
HTTP server library lets it: send a status line a byte at a time, a gigabyte of JSON, a gzip
bomb. Each connection reads the request head (and a Content-Length body), then runs the
`behaviour` chosen for the request's path: a function that writes to the socket.

Used by tests/unit/test_hostile.py and bench/bench_hostile.py.
"""

from __future__ import annotations

import functools
import json
import math
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from .base import map_png

Behaviour = Callable[[socket.socket], None]


class HostileServer:
    """`routes`: path regex -> behaviour. Unmatched paths get a small JSON 404."""

    def __init__(self, routes: dict[str, Behaviour] | None = None) -> None:
        self.routes: dict[str, Behaviour] = dict(routes or {})
        self.connections = 0
        self.requests: list[str] = []  # request lines, in order
        self.closed_early = 0  # connections whose client went away while we still wrote
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> HostileServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock = sock
        threading.Thread(target=self._accept, name="hostile-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._sock is not None
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()  # type: ignore[union-attr]
            except (TimeoutError, OSError):
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                piece = conn.recv(4096)
                if not piece:
                    return
                head += piece
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            with self.lock:
                self.requests.append(line)
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            rest = head.split(b"\r\n\r\n", 1)[1]
            if length:
                need = int(length.group(1)) - len(rest)
                while need > 0:
                    piece = conn.recv(min(need, 65536))
                    if not piece:
                        break
                    need -= len(piece)
            path = line.split(" ")[1] if " " in line else "/"
            for pattern, behaviour in self.routes.items():
                if re.search(pattern, path):
                    behaviour(conn)
                    break
            else:
                send_json(conn, {"message": "not found"}, 404)
        except OSError:
            with self.lock:
                self.closed_early += 1
        finally:
            try:
                conn.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- behaviours


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_json(conn: socket.socket, data: Any, status: int = 200) -> None:
    body = json.dumps(data).encode()
    conn.sendall(head(status, {"Content-Type": "application/json",
                               "Content-Length": str(len(body)), "Connection": "close"}) + body)


def json_answer(data: Any, status: int = 200) -> Behaviour:
    return lambda conn: send_json(conn, data, status)


def trickle(body: bytes, interval: float, content_type: str = "application/json",
            headers_too: bool = False) -> Behaviour:
    """One byte every `interval` seconds: of the body (headers sent at once), or of the whole
    answer from its status line on (`headers_too`)."""

    def run(conn: socket.socket) -> None:
        top = head(200, {"Content-Type": content_type, "Content-Length": str(len(body)),
                         "Connection": "close"})
        if not headers_too:
            conn.sendall(top)
            data = body
        else:
            data = top + body
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(interval)

    return run


def huge_json(size: int, status: str = "IN_PROGRESS") -> Behaviour:
    """A valid JSON object of `size` bytes, sent as fast as the client reads it."""

    def run(conn: socket.socket) -> None:
        start = json.dumps({"status": status, "progress": 50})[:-1].encode() + b', "pad": "'
        end = b'"}'
        pad = size - len(start) - len(end)
        conn.sendall(head(200, {"Content-Type": "application/json",
                                "Content-Length": str(size), "Connection": "close"}) + start)
        block = b"x" * (1 << 20)
        while pad > 0:
            conn.sendall(block[:pad])
            pad -= len(block)
        conn.sendall(end)

    return run


@functools.lru_cache(maxsize=4)
def gzip_of_json_pad(expanded: int) -> bytes:
    """Gzip of a JSON object `expanded` bytes long (mostly one string of spaces)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    start, end = b'{"status": "IN_PROGRESS", "pad": "', b'"}'
    out = [comp.compress(start)]
    block = b" " * (1 << 20)
    left = expanded - len(start) - len(end)
    while left > 0:
        out.append(comp.compress(block[:left]))
        left -= len(block)
    out.append(comp.compress(end) + comp.flush())
    return b"".join(out)


def gzip_bomb(expanded: int) -> Behaviour:
    """A small gzip body that expands to `expanded` bytes of a JSON string."""
    packed = gzip_of_json_pad(expanded)

    def run(conn: socket.socket) -> None:
        conn.sendall(head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                "Content-Length": str(len(packed)), "Connection": "close"})
                     + packed)

    return run


def endless(content_type: str = "application/json") -> Behaviour:
    """A body with no length that never ends (until the client hangs up)."""

    def run(conn: socket.socket) -> None:
        conn.sendall(head(200, {"Content-Type": content_type, "Connection": "close"}))
        block = b" " * 65536
        while True:
            conn.sendall(block)

    return run


def png_declaring(width: int, height: int, complete: bool = False) -> bytes:
    """A real PNG whose header declares `width`×`height`, of one colour. Its data holds a few
    rows, or with `complete` every row (still small: one colour compresses about 1000:1), so a
    decoder would allocate, and with `complete` fill, the declared size."""
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * (width * 3)
    raw = b"".join(comp.compress(row) for _ in range(height if complete else min(height, 4)))
    raw += comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(data, zlib.crc32(kind))
        return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw)
            + chunk(b"IEND", b""))


def png_answer(data: bytes) -> Behaviour:
    def run(conn: socket.socket) -> None:
        conn.sendall(head(200, {"Content-Type": "image/png", "Content-Length": str(len(data)),
                                "Connection": "close"}) + data)

    return run


def good_png() -> bytes:
    return map_png("base_color")


# --------------------------------------------------------------------------- hostile models


def instanced_glb(triangles_per_mesh: int, instances: int) -> bytes:
    """One small mesh placed by `instances` nodes: a file of kilobytes that reads as
    `triangles_per_mesh * instances` triangles."""
    import numpy as np

    from .glb import make_glb, read_glb, write_glb

    side = max(2, math.ceil((triangles_per_mesh / 2) ** 0.5) + 1)
    xs, ys = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))
    pos = np.stack([xs.ravel(), ys.ravel(), np.zeros(side * side, np.float32)], axis=1)
    quads = [(y * side + x, y * side + x + 1, (y + 1) * side + x + 1, (y + 1) * side + x)
             for y in range(side - 1) for x in range(side - 1)]
    idx = np.array([[a, b, c, a, c, d] for a, b, c, d in quads], dtype=np.uint32).ravel()
    idx = idx[:3 * triangles_per_mesh]
    gltf, binary = read_glb(make_glb(pos, idx))
    gltf["nodes"] = [{"mesh": 0, "translation": [0.0, 0.0, float(i)]} for i in range(instances)]
    gltf["scenes"] = [{"nodes": list(range(instances))}]
    return write_glb(gltf, binary)


def unbacked_glb(count: int = 1 << 24) -> bytes:
    """A triangle whose POSITION accessor declares `count` vertices with no data behind them
    (glTF says: zeros)."""
    import numpy as np

    from .glb import make_glb, read_glb, write_glb

    gltf, binary = read_glb(make_glb(np.eye(3, dtype=np.float32), np.array([0, 1, 2])))
    acc = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    del acc["bufferView"]
    acc["count"] = count
    return write_glb(gltf, binary)


def fat_json_glb(json_bytes: int) -> bytes:
    """A textured-model GLB whose JSON chunk is padded to `json_bytes` (an "extras" string)."""
    import numpy as np

    from .base import map_png as png
    from .glb import make_glb, read_glb, write_glb

    gltf, binary = read_glb(make_glb(np.eye(3, dtype=np.float32), np.array([0, 1, 2]),
                                     np.zeros((3, 2), np.float32)))
    image = png("base_color")
    offset = len(binary) + (-len(binary) % 4)
    binary = binary + b"\x00" * (offset - len(binary)) + image
    gltf["bufferViews"].append({"buffer": 0, "byteOffset": offset, "byteLength": len(image)})
    gltf["buffers"][0]["byteLength"] = len(binary)
    gltf["images"] = [{"bufferView": len(gltf["bufferViews"]) - 1, "mimeType": "image/png"}]
    gltf["textures"] = [{"source": 0}]
    gltf["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    gltf["meshes"][0]["primitives"][0]["material"] = 0
    gltf["extras"] = {"pad": "x" * max(0, json_bytes - 1000)}
    return write_glb(gltf, binary)
