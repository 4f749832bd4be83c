"""Residents' photos from the web chat: checked (size, a real image of an allowed type, not an image bomb),
re-encoded with Pillow so nothing but the pixels is kept (EXIF, GPS location, camera, comments all go; the
orientation is applied first so the photo still stands upright), stored under the data directory with a
random name, and served only to the ticket's assignee and the staff of its area (TicketService.photo_of)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web
from PIL import Image, ImageOps, UnidentifiedImageError

from dashboard.auth import signed_in
from dashboard.errors import PageError
from dashboard.keys import SERVICE

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is the most a phone takes; more is an image bomb
LONGEST_SIDE = 2560  # stored smaller: enough to see a leak or a broken lamp
FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
NAME_RE = re.compile(r"[0-9a-f]{32}\.jpg")

TOO_BIG = "照片太大了(最多 10 MB),请换一张或压缩后再发。"
NOT_IMAGE = "这不是照片。请选择 JPG、PNG 或 WebP 格式的照片。"
BOMB = "这张图片的尺寸太大了,无法处理。请换一张普通的照片。"
EMPTY = "没有收到照片,请重新选择。"


class PhotoRefused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Stored:
    name: str
    size: int
    width: int
    height: int


def clean_photo(data: bytes) -> tuple[bytes, int, int]:
    """The photo re-encoded as a JPEG without any metadata; PhotoRefused for what is not a photo we take."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in FORMATS:
                raise PhotoRefused(NOT_IMAGE, 415)
            width, height = image.size
            if width * height > MAX_PIXELS:  # read from the header, before any pixel is decoded
                raise PhotoRefused(BOMB, 413)
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            upright = upright.convert("RGB")
            upright.thumbnail((LONGEST_SIDE, LONGEST_SIDE))
            out = io.BytesIO()
            # A new image with no info carried over: no exif=, no icc_profile=, no comment.
            upright.save(out, "JPEG", quality=85, optimize=True)
            return out.getvalue(), upright.width, upright.height
    except Image.DecompressionBombError:
        raise PhotoRefused(BOMB, 413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise PhotoRefused(NOT_IMAGE, 415) from None


async def store_photo(data: bytes, directory: Path) -> Stored:
    """Clean and keep the photo (off the event loop: decoding takes a while); the file is private (0600)."""
    if not data:
        raise PhotoRefused(EMPTY)
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(TOO_BIG, 413)
    jpeg, width, height = await asyncio.to_thread(clean_photo, data)
    name = f"{secrets.token_hex(16)}.jpg"
    await asyncio.to_thread(_write, directory, name, jpeg)
    return Stored(name, len(jpeg), width, height)


def _write(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def remove_photo(directory: Path, name: str) -> None:
    if NAME_RE.fullmatch(name):
        (directory / name).unlink(missing_ok=True)


async def read_upload(request: web.Request, field: str = "photo") -> bytes:
    """The uploaded file's bytes, read as a stream and cut off past the limit (the app's own body limit is
    for forms; a photo is read here, no more than MAX_PHOTO_BYTES + 1)."""
    if request.content_type != "multipart/form-data":
        raise PhotoRefused(EMPTY)
    if request.content_length is not None and request.content_length > MAX_PHOTO_BYTES + 64 * 1024:
        raise PhotoRefused(TOO_BIG, 413)
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name == field:
            chunks, size = [], 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > MAX_PHOTO_BYTES:
                    raise PhotoRefused(TOO_BIG, 413)
                chunks.append(chunk)
            return b"".join(chunks)
    raise PhotoRefused(EMPTY)


async def send_photo(request: web.Request, directory: Path, responder_id: int) -> web.StreamResponse:
    """The photo named in the path ({number}, {name}) for the responder, if the domain lets them see it
    (TicketService.photo_of: the ticket's assignee and the staff of its area); anyone else finds nothing."""
    name = request.match_info["name"]
    if not NAME_RE.fullmatch(name):
        raise PageError(404, "没有找到这张照片。")
    await request.app[SERVICE].photo_of(request.match_info["number"][:32], name, responder_id)
    path = directory / name
    if not path.is_file():
        raise PageError(404, "这张照片已经删除了。")
    response = web.FileResponse(path)
    response.headers["Content-Type"] = "image/jpeg"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def photo_route(directory: Path) -> web.RouteDef:
    """GET /tickets/{number}/photos/{name}: for signed-in staff whose area the ticket is in (and, through the
    same domain rule, its assignee). The volunteer page has its own (dashboard/volunteer.py)."""

    async def photo(request: web.Request) -> web.StreamResponse:
        user = await signed_in(request)
        return await send_photo(request, directory, user.responder_id)

    return web.get("/tickets/{number}/photos/{name}", photo)
