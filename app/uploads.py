"""Reading uploads with a bound that is checked while the bytes stream in."""

from __future__ import annotations

from fastapi import Request

from app.container import Services
from vault.errors import PayloadTooLarge
from vault.schemas import is_number


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and is_number(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"Photos can be up to {limit // (1024 * 1024)} MB.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Photos can be up to {limit // (1024 * 1024)} MB.")
        chunks.append(chunk)
    return b"".join(chunks)


async def bounded_body(request: Request) -> bytes:
    services: Services = request.app.state.services
    return await read_bounded(request, services.settings.max_photo_bytes)
