"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import exception_handlers
from app.container import Services, build_services
from app.middleware import (
    BodySizeLimitMiddleware,
    RequestSlotsMiddleware,
    SecurityHeadersMiddleware,
    UnexpectedErrorMiddleware,
)
from app.routers import agencies, health, me, oauth, pages, sharing
from app.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _lifespan(worker_threads: int) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        yield

    return lifespan


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app. Refuses to start if the key file can be read by others."""
    settings = settings or Settings()
    services = services or build_services(settings)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("storykeep").setLevel(logging.INFO)  # ours only; libraries stay quiet

    app = FastAPI(
        title="Storykeep",
        version="0.1.0",
        summary="A young person's own story and records, and their say over who sees them.",
        docs_url=None,  # Swagger UI needs inline script, which our CSP forbids
        redoc_url=None,
        lifespan=_lifespan(settings.worker_threads),
    )
    app.state.services = services
    app.state.templates = Jinja2Templates(directory=PROJECT_ROOT / "templates")
    exception_handlers.install(app)
    app.include_router(health.router)
    app.include_router(me.router)
    app.include_router(sharing.router)
    app.include_router(oauth.router)
    app.include_router(agencies.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")
    # Added last = outermost: headers go on every response, even a 413 or a 500.
    app.add_middleware(RequestSlotsMiddleware, slots=settings.worker_threads)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_request_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
