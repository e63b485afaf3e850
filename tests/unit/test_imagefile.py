"""PNG writing/reading and image sniffing without PIL."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from text_to_texture.formats.imagefile import (
    decode_png,
    encode_png,
    image_info,
    read_png,
    write_png,
)

RNG = np.random.default_rng(7)


def _smooth(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    """A gradient plus noise: compresses like a real map, exercises every byte value."""
    top = 255 if dtype == np.uint8 else 65535
    ramp = np.linspace(0, top, shape[1])[None, :] * np.ones(shape[:2])
    if len(shape) == 3:
        ramp = ramp[..., None] * np.linspace(0.3, 1.0, shape[2])
    noisy = ramp + RNG.normal(0, top / 40, shape)
    return np.clip(noisy, 0, top).astype(dtype)


@pytest.mark.parametrize(
    "pixels",
    [
        _smooth((5, 7)),
        _smooth((33, 17, 3)),
        _smooth((16, 9, 4)),
        _smooth((12, 20), np.uint16),
        _smooth((1, 1, 3)),
        _smooth((9, 11, 2)),
    ],
    ids=["gray", "rgb", "rgba", "gray16", "1px", "gray-alpha"],
)
def test_round_trip(tmp_path: Path, pixels: np.ndarray) -> None:
    path = tmp_path / "map.png"
    write_png(str(path), pixels)
    back = read_png(str(path))
    assert back.dtype == pixels.dtype
    assert np.array_equal(back, pixels)
    height, width = pixels.shape[:2]
    assert image_info(str(path)) == ("PNG", width, height)


def test_big_image_is_compressed_in_parallel_pieces_and_stays_valid(tmp_path: Path) -> None:
    pixels = _smooth((700, 1100, 3))  # > 2 MB of scanlines: split across threads
    data = encode_png(pixels)
    assert np.array_equal(decode_png(data), pixels)
    idat_at = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat_at - 4 : idat_at])[0]
    raw = zlib.decompress(data[idat_at + 4 : idat_at + 4 + length])  # one valid zlib stream
    assert len(raw) == 700 * (1100 * 3 + 1)
    assert len(data) < pixels.nbytes  # the filter + deflate actually compress a smooth map


def test_row_zero_is_the_top_row(tmp_path: Path) -> None:
    pixels = np.zeros((4, 3), np.uint8)
    pixels[0] = 255
    data = encode_png(pixels)
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 :])
    assert raw[0:1] == b"\x02" and raw[1:4] == b"\xff\xff\xff"  # first scanline is white


def test_write_is_atomic_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    write_png(str(path), np.zeros((4, 4), np.uint8))
    write_png(str(path), np.full((2, 3), 9, np.uint8))
    assert read_png(str(path)).shape == (2, 3)
    assert sorted(os.listdir(tmp_path)) == ["a.png"]  # no temp file left behind
    assert (os.stat(path).st_mode & 0o777) == 0o644


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_png(str(tmp_path / "bad.png"), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError):
        write_png(str(tmp_path / "bad.png"), np.zeros((4, 4, 5), np.uint8))
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- decoding filters


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _encode_with_filters(pixels: np.ndarray, depth: int, color_type: int) -> bytes:
    """A slow, obviously-correct PNG encoder that cycles through all five filters."""
    rows = pixels if depth == 8 else pixels.astype(">u2")
    height = rows.shape[0]
    lines = np.ascontiguousarray(rows).view(np.uint8).reshape(height, -1)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    bpp = channels * depth // 8
    out = bytearray()
    prev = [0] * lines.shape[1]
    for y in range(height):
        kind = y % 5
        cur = [int(v) for v in lines[y]]
        out.append(kind)
        for x, value in enumerate(cur):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            out.append((value - pred) & 0xFF)
        prev = cur
    width = pixels.shape[1]
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return _png(ihdr, zlib.compress(bytes(out)))


def _png(ihdr: bytes, idat: bytes, extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(payload, zlib.crc32(kind))
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    sig = b"\x89PNG\r\n\x1a\n"
    return sig + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("pixels", "depth", "color_type"),
    [
        (_smooth((11, 13, 3)), 8, 2),
        (_smooth((10, 6, 4)), 8, 6),
        (_smooth((10, 9)), 8, 0),
        (_smooth((7, 5, 2)), 8, 4),
        (_smooth((10, 8), np.uint16), 16, 0),
    ],
    ids=["rgb", "rgba", "gray", "gray-alpha", "gray16"],
)
def test_decodes_all_five_filters(pixels: np.ndarray, depth: int, color_type: int) -> None:
    assert np.array_equal(decode_png(_encode_with_filters(pixels, depth, color_type)), pixels)


def test_palette_is_expanded() -> None:
    palette = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])
    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in index)
    ihdr = struct.pack(">IIBBBBB", 3, 2, 8, 3, 0, 0, 0)
    crc = zlib.crc32(palette, zlib.crc32(b"PLTE"))
    plte = struct.pack(">I", 9) + b"PLTE" + palette + struct.pack(">I", crc)
    rgb = decode_png(_png(ihdr, zlib.compress(raw), plte))
    assert rgb.shape == (2, 3, 3)
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[1, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"GIF89a" + d[6:], "not a PNG"),
        (lambda d: d[:40], "truncated"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "CRC"),
        (lambda d: _png(struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 1), zlib.compress(b"\0" * 52)),
         "interlaced"),
        (lambda d: _png(struct.pack(">IIBBBBB", 4, 4, 4, 0, 0, 0, 0), zlib.compress(b"\0" * 12)),
         "bit depth"),
        (lambda d: _png(struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0), zlib.compress(b"\0" * 7)),
         "truncated"),
        (lambda d: _png(struct.pack(">IIBBBBB", 2, 1, 8, 0, 0, 0, 0), zlib.compress(b"\x07ab")),
         "filter type 7"),
    ],
    ids=["signature", "short-file", "bad-crc", "interlaced", "4-bit", "short-data", "bad-filter"],
)
def test_rejects_what_it_cannot_read(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    good = encode_png(_smooth((4, 4, 3)))
    with pytest.raises(ValueError, match=message):
        decode_png(mutate(good))


# --------------------------------------------------------------------------- sniffing


def _jpeg_header(width: int, height: int, sof: int = 0xC0) -> bytes:
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\x00" + bytes(64)
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return (
        b"\xff\xd8"
        + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0
        + b"\xff\xdb" + struct.pack(">H", len(dqt) + 2) + dqt
        + b"\xff\xff"  # a fill byte before the next marker is legal
        + bytes([0xFF, sof]) + struct.pack(">H", len(frame) + 2) + frame
        + b"\xff\xda\x00\x08" + bytes(6)
    )


def test_image_info_reads_jpeg_frame_size(tmp_path: Path) -> None:
    assert image_info(_jpeg_header(640, 480)) == ("JPEG", 640, 480)
    assert image_info(_jpeg_header(31, 7, sof=0xC2)) == ("JPEG", 31, 7)  # progressive
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg_header(2048, 1024))
    assert image_info(str(path)) == ("JPEG", 2048, 1024)
    assert image_info(path) == ("JPEG", 2048, 1024)


def test_image_info_reads_webp() -> None:
    vp8x = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10)
    vp8x += b"\x00\x00\x00\x00" + (1023).to_bytes(3, "little") + (511).to_bytes(3, "little")
    assert image_info(vp8x) == ("WEBP", 1024, 512)
    bits = (100 - 1) | ((50 - 1) << 14)
    vp8l = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 5)
    vp8l += b"\x2f" + bits.to_bytes(4, "little") + bytes(8)
    assert image_info(vp8l) == ("WEBP", 100, 50)
    vp8 = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8 " + struct.pack("<I", 10)
    vp8 += b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", 300, 200) + bytes(8)
    assert image_info(vp8) == ("WEBP", 300, 200)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html><body>Access denied</body></html>",
        b'{"error": "rate limited"}',
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # JPEG cut off before its frame header
        b"\xff\xd8\xff\xda\x00\x08" + bytes(20),  # scan before any frame header
        b"\x89PNG\r\n\x1a\n",  # PNG signature alone
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        bytes(range(256)),
    ],
)
def test_image_info_rejects_garbage(data: bytes) -> None:
    assert image_info(data) is None


def test_image_info_missing_file(tmp_path: Path) -> None:
    assert image_info(str(tmp_path / "nope.png")) is None
