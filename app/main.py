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
from app.db import WalCheckpointer
from app.jobs import JobRunner
from app.middleware import (
    GROUP_COMMITTED_PATHS,
    UNEXPECTED_MESSAGE,
    BodySizeLimitMiddleware,
    RequestSlotsMiddleware,
    SecurityHeadersMiddleware,
    UnexpectedErrorMiddleware,
)
from app.routers import advocates, agencies, corrections, health, me, oauth, pages, sharing
from app.routers.agency_corrections import router as agency_corrections_router
from app.routers.insight import router as insight_router
from app.routers.notifications import api as notifications_api
from app.routers.notifications import pages as notifications_pages
from app.routers.practitioner import router as practitioner_router
from app.routers.practitioner_corrections import router as practitioner_corrections_router
from app.routers.reviews import api as reviews_api
from app.routers.reviews import pages as reviews_pages
from app.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _lifespan(
    services: Services, run_jobs: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings = services.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        # The lifecycle job and outbox delivery, in-process while serving (app/jobs.py).
        checkpointer = WalCheckpointer(services.engine)
        checkpointer.start()
        runner = None
        if run_jobs and settings.jobs_interval_seconds > 0:
            runner = JobRunner(services, settings.jobs_interval_seconds)
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            services.committer.stop()  # finish what is queued before the process ends
            checkpointer.stop()

    return lifespan


def _unexpected_error_page(app: FastAPI) -> bytes:
    """The "Sorry" page for a 500, rendered now with no request and no person, so it
    never depends on what went wrong."""
    page = app.state.templates.get_template("error.html").render(
        message=UNEXPECTED_MESSAGE, status=500
    )
    return str(page).encode()


def create_app(
    settings: Settings | None = None, services: Services | None = None, run_jobs: bool = False
) -> FastAPI:
    """Build the app. Refuses to start if the key file can be read by others.
    ``run_jobs``: also run scheduled jobs in this process (``storykeep serve`` does)."""
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
        lifespan=_lifespan(services, run_jobs),
    )
    app.state.services = services
    app.state.templates = Jinja2Templates(directory=PROJECT_ROOT / "templates")
    exception_handlers.install(app)
    app.include_router(health.router)
    # The agency-facing hot paths next: routes are matched in order, one by one.
    app.include_router(agencies.router)
    app.include_router(oauth.router)
    app.include_router(me.router)
    app.include_router(sharing.router)
    app.include_router(corrections.router)
    app.include_router(corrections.pages)
    app.include_router(agency_corrections_router)
    app.include_router(pages.router)
    app.include_router(practitioner_corrections_router)
    app.include_router(reviews_pages)
    app.include_router(reviews_api)
    app.include_router(practitioner_router)
    app.include_router(advocates.router)
    app.include_router(notifications_api)
    app.include_router(notifications_pages)
    app.include_router(insight_router)
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")
    # Added last = outermost: headers go on every response, even a 413 or a 500.
    app.add_middleware(
        RequestSlotsMiddleware, slots=settings.worker_threads, exempt=GROUP_COMMITTED_PATHS
    )
    app.add_middleware(UnexpectedErrorMiddleware, page=_unexpected_error_page(app))
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_request_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
