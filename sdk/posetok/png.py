"""Reading and writing 8-bit PNG images with numpy and zlib only (the device has no PIL or OpenCV).

Reads non-interlaced 8-bit grey, grey + alpha, RGB, RGBA and palette images
(alpha is dropped); writes RGB or grey. Rows filtered with None, Sub or Up
decode vectorized; Average and Paeth rows (what libpng's adaptive filtering
often picks) decode pixel by pixel in Python, about a second per megapixel.
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from .atomic import write_bytes_atomic

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
MAX_PIXELS = 1 << 26                        # 64 Mpixel: far above any camera frame


def _chunks(data: bytes, name: str):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or len(data) < pos + 12 + length:
            raise ValueError(f"{name}: PNG chunk {kind!r} is truncated")
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"{name}: PNG chunk {kind!r} fails its CRC (a damaged file)")
        yield kind, body
        pos += 12 + length


def _paeth_or_average(kind: int, row: bytearray, prev: bytes, bpp: int) -> None:
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            row[i] = (row[i] + ((a + b) >> 1)) & 255
            continue
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255


def _unfilter(raw: bytes, height: int, stride: int, bpp: int, name: str) -> np.ndarray:
    if len(raw) != height * (stride + 1):
        raise ValueError(f"{name}: PNG image data holds {len(raw)} bytes, {height * (stride + 1)} expected")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for r in range(height):
        kind, line = int(rows[r, 0]), rows[r, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum per byte of the pixel, mod 256
            padded = np.zeros(-(-stride // bpp) * bpp, np.uint8)
            padded[:stride] = line
            cur = np.cumsum(padded.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)[:stride]
        elif kind == 2:
            cur = line + prev
        elif kind in (3, 4):
            buf = bytearray(line.tobytes())
            _paeth_or_average(kind, buf, prev.tobytes(), bpp)
            cur = np.frombuffer(bytes(buf), np.uint8)
        else:
            raise ValueError(f"{name}: PNG row {r} has unknown filter type {kind}")
        out[r] = cur
        prev = out[r]
    return out


def decode_png(data: bytes, name: str = "PNG") -> np.ndarray:
    """Decode an 8-bit PNG file's bytes.

    Args:
        data: the whole file.
        name: what to call the file in error messages.

    Returns:
        C-contiguous uint8 (H, W, 3) for colour images (palette and RGBA
        included, alpha dropped) or (H, W) for grey ones.

    Raises:
        ValueError: not a PNG, a damaged or truncated file, or one this reader
            does not handle (bit depth other than 8, interlaced), named in the message.
    """
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{name}: not a PNG file (no PNG signature)")
    header, palette, parts = None, None, []
    for kind, body in _chunks(data, name):
        if kind == b"IHDR":
            if len(body) != 13:
                raise ValueError(f"{name}: PNG IHDR chunk holds {len(body)} bytes, 13 expected")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            if not body or len(body) % 3:
                raise ValueError(f"{name}: PNG PLTE chunk holds {len(body)} bytes, not a whole number of "
                                 "RGB entries")
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            parts.append(body)
        elif kind == b"IEND":
            break
    if header is None or not parts:
        raise ValueError(f"{name}: PNG has no {'IHDR' if header is None else 'IDAT'} chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS:
        raise ValueError(f"{name}: PNG with bit depth {depth}, colour type {colour}; this reader takes 8-bit "
                         "grey, grey+alpha, RGB, RGBA or palette images")
    if interlace:
        raise ValueError(f"{name}: interlaced PNG is not supported; save it without interlacing")
    if not (0 < width and 0 < height and width * height <= MAX_PIXELS):
        raise ValueError(f"{name}: PNG of {width}x{height} pixels (at most {MAX_PIXELS} pixels)")
    c = _CHANNELS[colour]
    try:
        raw = zlib.decompress(b"".join(parts))
    except zlib.error as exc:
        raise ValueError(f"{name}: PNG image data is damaged ({exc})") from None
    pixels = _unfilter(raw, height, width * c, c, name).reshape(height, width, c)
    if colour == 3:
        if palette is None or int(pixels.max()) >= len(palette):
            raise ValueError(f"{name}: palette PNG without a PLTE chunk covering its indices")
        return palette[pixels[..., 0]]
    # alpha dropped by a copy, not a view: callers (the kernels) read packed pixels
    return np.ascontiguousarray(pixels[..., 0] if c <= 2 else pixels[..., :3])


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """Encode an image as an 8-bit PNG (rows unfiltered, zlib compressed).

    Args:
        image: uint8 (H, W, 3) RGB or (H, W) grey.
        level: zlib level 0-9.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: a wrong dtype or shape.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or img.size == 0:
        raise ValueError(f"image must be uint8 (H, W, 3) or (H, W), got {img.dtype} {img.shape}")
    height, width = img.shape[:2]
    rows = np.ascontiguousarray(img).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if img.ndim == 3 else 0, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b"")


def read_png(path: os.PathLike | str) -> np.ndarray:
    """Read an 8-bit PNG file (see ``decode_png``).

    Args:
        path: the file.

    Returns:
        uint8 (H, W, 3) or (H, W).

    Raises:
        OSError: the file cannot be read.
        ValueError: not a PNG this reader handles (the message says why).
    """
    with open(path, "rb") as fh:
        return decode_png(fh.read(), str(path))


def write_png(path: os.PathLike | str, image: np.ndarray) -> None:
    """Write an image as a PNG file, atomically (temporary file + rename).

    Args:
        path: the file to write.
        image: uint8 (H, W, 3) RGB or (H, W) grey.

    Raises:
        ValueError: a wrong dtype or shape.
        OSError: the file cannot be written.
    """
    write_bytes_atomic(path, encode_png(image))
