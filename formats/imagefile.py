"""Small image file I/O without PIL: PNG write/read and format sniffing.

Blender's Python has no PIL, and the providers run on worker threads where `bpy` is off
limits, so the maps are encoded and checked here with zlib and numpy alone.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from . import limits
from .atomic import write_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_PARALLEL_MIN_BYTES = 2 << 20  # below this one compressor is faster than a thread pool


# --------------------------------------------------------------------------- writing


def write_png(path: str, pixels: np.ndarray) -> None:
    """Write `pixels` (row 0 = top) as a PNG, atomically.

    Accepts uint8 HxW / HxWx1..4 and uint16 HxW / HxWx1..4. The file appears complete or
    not at all, so a reader (Blender, a crash-resume) never sees a half-written map.
    """
    write_atomic(path, encode_png(pixels))


def encode_png(pixels: np.ndarray) -> bytes:
    """Return the PNG file bytes for `pixels` (see `write_png`)."""
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in _COLOR_TYPE or 0 in arr.shape[:2]:
        raise ValueError(f"write_png: unsupported array shape {np.shape(pixels)}")
    if arr.dtype == np.uint8:
        depth = 8
    elif arr.dtype == np.uint16:
        depth = 16
        arr = arr.astype(">u2")
    else:
        raise ValueError(f"write_png: pixels must be uint8 or uint16, not {arr.dtype}")
    height, width, channels = arr.shape
    rows = np.ascontiguousarray(arr).view(np.uint8).reshape(height, -1)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, _COLOR_TYPE[channels], 0, 0, 0)
    idat = _deflate(_filter_up(rows))
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _filter_up(rows: np.ndarray) -> bytes:
    """Scanlines with the "Up" filter: vectorizes fully and compresses smooth maps well."""
    height, stride = rows.shape
    out = np.empty((height, stride + 1), dtype=np.uint8)
    out[:, 0] = 2
    out[0, 1:] = rows[0]  # Up against the implicit zero row above is the row itself
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out.tobytes()


def _deflate(raw: bytes) -> bytes:
    """zlib-compress, splitting big images across threads (zlib releases the GIL).

    Each piece is an independent raw deflate stream ended by a sync flush, so the pieces
    concatenate into one valid stream, the way pigz does it.
    """
    pieces = min(os.cpu_count() or 1, 4, max(1, len(raw) // _PARALLEL_MIN_BYTES))
    if pieces <= 1:
        comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        return comp.compress(raw) + comp.flush()
    view = memoryview(raw)
    size = -(-len(raw) // pieces)
    parts = [view[i : i + size] for i in range(0, len(raw), size)]

    def work(index: int) -> bytes:
        comp = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        mode = zlib.Z_FINISH if index == len(parts) - 1 else zlib.Z_SYNC_FLUSH
        return comp.compress(parts[index]) + comp.flush(mode)

    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        body = b"".join(pool.map(work, range(len(parts))))
    return b"\x78\x01" + body + struct.pack(">I", zlib.adler32(raw))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


# --------------------------------------------------------------------------- reading


def read_png(path: str) -> np.ndarray:
    """Decode a non-interlaced 8/16-bit PNG to HxW (gray) or HxWxC, row 0 = top.

    Gray+alpha gives 2 channels, palette images are expanded to RGB(A). Anything else
    raises ValueError, so a corrupt download is reported instead of half-loaded.
    """
    with open(path, "rb") as fh:
        return decode_png(fh.read())


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes; see `read_png`."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file (bad signature)")
    header, idat, palette, trns = _read_chunks(data)
    width, height, depth, color_type, _comp, _filt, interlace = header
    if color_type not in _CHANNELS:
        raise ValueError(f"PNG colour type {color_type} is not supported")
    if depth not in (8, 16) or (color_type == 3 and depth != 8):
        raise ValueError(f"PNG bit depth {depth} is not supported (only 8 and 16)")
    if interlace:
        raise ValueError("interlaced PNGs are not supported")
    if width == 0 or height == 0:
        raise ValueError("PNG has zero size")
    problem = limits.current().map_problem(width, height)
    if problem:  # checked from the header, before a byte of pixels is allocated
        raise ValueError(f"the image {problem}")
    channels = _CHANNELS[color_type]
    bpp = channels * depth // 8
    stride = width * bpp
    expected = height * (stride + 1)
    try:  # never more than the header promises, however well the data compresses
        raw = zlib.decompressobj().decompress(idat, expected)
    except zlib.error as exc:
        raise ValueError(f"PNG image data is corrupt: {exc}") from None
    if len(raw) < expected:
        raise ValueError("PNG image data is truncated")
    scan = np.frombuffer(raw, dtype=np.uint8, count=height * (stride + 1))
    rows = _unfilter(scan.reshape(height, stride + 1), bpp)
    if depth == 16:
        pixels = rows.view(">u2").astype(np.uint16).reshape(height, width, channels)
    else:
        pixels = rows.reshape(height, width, channels)
    if color_type == 3:
        return _expand_palette(pixels[:, :, 0], palette, trns)
    return pixels[:, :, 0] if channels == 1 else pixels


def _read_chunks(data: bytes) -> tuple[tuple[int, ...], bytes, bytes, bytes]:
    pos, header, idat, palette, trns = 8, None, [], b"", b""
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(payload) != length or len(crc) != 4:
            raise ValueError("PNG file is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(payload, zlib.crc32(kind)):
            raise ValueError(f"PNG chunk {kind.decode('latin-1')} is corrupt (bad CRC)")
        if kind == b"IHDR":
            if length != 13:
                raise ValueError("PNG header is malformed")
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"PLTE":
            palette = payload
        elif kind == b"tRNS":
            trns = payload
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("PNG has no header chunk (truncated?)")
    if not idat:
        raise ValueError("PNG has no image data (truncated?)")
    return header, b"".join(idat), palette, trns


def _unfilter(scan: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the per-row filters; None/Sub/Up are vectorized, Average/Paeth go per pixel."""
    height = scan.shape[0]
    out = np.empty((height, scan.shape[1] - 1), dtype=np.uint8)
    prev = np.zeros(out.shape[1], dtype=np.uint8)
    for y in range(height):
        kind, line = int(scan[y, 0]), scan[y, 1:]
        row = out[y]
        if kind == 0:
            row[:] = line
        elif kind == 1:
            _unsub(line, bpp, row)
        elif kind == 2:
            np.add(line, prev, out=row)
        elif kind == 3:
            _unaverage(line, prev, bpp, row)
        elif kind == 4:
            _unpaeth(line, prev, bpp, row)
        else:
            raise ValueError(f"PNG row {y} has unknown filter type {kind}")
        prev = row
    return out


def _unsub(line: np.ndarray, bpp: int, row: np.ndarray) -> None:
    # Sub is a running sum along each byte lane, mod 256: a cumsum in uint8 wraps for free.
    lanes = line.reshape(-1, bpp)
    np.cumsum(lanes, axis=0, dtype=np.uint8, out=row.reshape(-1, bpp))


def _unaverage(line: np.ndarray, prev: np.ndarray, bpp: int, row: np.ndarray) -> None:
    left = np.zeros(bpp, dtype=np.int32)
    filt, up = line.astype(np.int32), prev.astype(np.int32)
    for x in range(0, line.shape[0], bpp):
        left = (filt[x : x + bpp] + ((left + up[x : x + bpp]) >> 1)) & 0xFF
        row[x : x + bpp] = left


def _unpaeth(line: np.ndarray, prev: np.ndarray, bpp: int, row: np.ndarray) -> None:
    left = np.zeros(bpp, dtype=np.int32)
    upleft = np.zeros(bpp, dtype=np.int32)
    filt, up_row = line.astype(np.int32), prev.astype(np.int32)
    for x in range(0, line.shape[0], bpp):
        up = up_row[x : x + bpp]
        p = left + up - upleft
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
        pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        left = (filt[x : x + bpp] + pred) & 0xFF
        upleft = up
        row[x : x + bpp] = left


def _expand_palette(index: np.ndarray, palette: bytes, trns: bytes) -> np.ndarray:
    if not palette or len(palette) % 3:
        raise ValueError("PNG palette is missing or malformed")
    colors = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)
    if trns:
        alpha = np.full(len(colors), 255, dtype=np.uint8)
        alpha[: min(len(trns), len(colors))] = np.frombuffer(trns, np.uint8)[: len(colors)]
        colors = np.concatenate([colors, alpha[:, None]], axis=1)
    if int(index.max()) >= len(colors):
        raise ValueError("PNG pixel refers past the end of its palette")
    return colors[index]


# --------------------------------------------------------------------------- sniffing


def image_info(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> (
    tuple[str, int, int] | None
):
    """Return (format, width, height) for a PNG, JPEG or WEBP, else None.

    Reads only the header, so a download can be checked to really be an image (and not an
    HTML error page saved under .png) before Blender is asked to load it.
    """
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return _sniff(io.BytesIO(bytes(source)))
        with open(source, "rb") as fh:
            return _sniff(fh)
    except (OSError, struct.error, ValueError):
        return None


def _sniff(fh: BinaryIO) -> tuple[str, int, int] | None:
    head = fh.read(32)
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return ("PNG", width, height)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg_size(fh)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head + fh.read(8))
    return None


def _jpeg_size(fh: BinaryIO) -> tuple[str, int, int] | None:
    """Walk the marker segments to the first SOFn frame header."""
    fh.seek(2)
    while True:
        byte = fh.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            return None  # segments must follow each other directly
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            return None
        code = marker[0]
        if code == 0xD8 or code == 0x01 or 0xD0 <= code <= 0xD7:
            continue  # standalone markers carry no length
        if code in (0xD9, 0xDA):
            return None  # end of image / start of scan before any frame header
        length = struct.unpack(">H", fh.read(2))[0]
        if length < 2:
            return None
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            _precision, height, width = struct.unpack(">BHH", fh.read(5))
            return ("JPEG", width, height) if width and height else None
        fh.seek(length - 2, io.SEEK_CUR)


def _webp_size(head: bytes) -> tuple[str, int, int] | None:
    kind, body = head[12:16], head[20:]
    if kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return ("WEBP", width & 0x3FFF, height & 0x3FFF)
    if kind == b"VP8L" and body[:1] == b"\x2f":
        bits = int.from_bytes(body[1:5], "little")
        return ("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return ("WEBP", width, height)
    return None
