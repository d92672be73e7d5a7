"""The signup web application: pages, the JSON API and the WHMCS panel endpoints in one FastAPI app.

``create_app`` is what the composition root (or a test) serves. It needs the database, the settings
and a SolusVM 2 client (for SSO tokens); ``on_commit`` is called after every commit that wrote to
the signup outbox, so the relay publishes at once instead of at its next poll.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.signup.figures import AccountFigures
from services.signup.finish import FinishSigningUp
from services.signup.journey import SignupJourney
from services.signup.plans import PlanCatalog
from services.signup.schema import tables
from services.signup.settings import SignupSettings
from services.signup.sso import SingleSignOn
from services.signup.tokens import Signer
from services.signup.vault import PasswordVault
from services.signup.verification import Verification
from services.signup.web.api import Problem
from services.signup.web.api import router as api_router
from services.signup.web.guard import BodyLimit, SecurityHeaders, add_assets_and_docs, origin_of, page_policy
from services.signup.web.links import router as links_router
from services.signup.web.pages import router as pages_router
from services.signup.web.panel import router as panel_router
from services.signup.web.support import FormRefused, Web, page
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.logging import get_logger
from shared.ports import SolusVM

log = get_logger("postpay.signup.web")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(
    db: Database,
    settings: SignupSettings,
    solusvm: SolusVM,
    *,
    clock: Clock = utcnow,
    on_commit: Callable[[], None] | None = None,
) -> FastAPI:
    signer = Signer(settings.secret_key.get_secret_value())
    journey = SignupJourney(db, tables, settings, PasswordVault(settings.password_keys), clock, on_commit)
    app = FastAPI(
        title="postpay signup",
        version="1",
        description="Enrollment in SolusVM 2 post-pay billing: registration, progress, and the WHMCS panel.",
        docs_url=None,  # served by web_guard, with a policy of its own
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.web = Web(
        settings,
        journey,
        Verification(journey, signer),
        SingleSignOn(db, settings, signer, solusvm, clock),
        signer,
        FinishSigningUp(db, settings, signer, clock),
        AccountFigures(db, settings, clock, tables.outbox, journey.committed_events),
        PlanCatalog(solusvm, settings, clock),
    )
    app.include_router(pages_router)
    app.include_router(links_router)
    app.include_router(api_router)
    app.include_router(panel_router)
    add_assets_and_docs(app, settings)
    # The last added runs first: the headers wrap everything, the 413 included.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, settings=settings)
    solusvm_origin = origin_of(solusvm.sso_login_url("x")) if hasattr(solusvm, "sso_login_url") else None
    app.add_middleware(SecurityHeaders, policy=page_policy(solusvm_origin, settings.brand_logo_url))

    @app.exception_handler(FormRefused)
    async def form_refused(request: Request, exc: FormRefused) -> Response:
        return exc.response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"][1:]) or "body", "message": str(error["msg"])}
            for error in exc.errors()[:20]
        ]
        if _is_api(request):
            body = Problem(code="invalid", message="The request is not valid.", errors=errors)
            return JSONResponse(body.model_dump(mode="json"), status_code=422)
        return page(request, "problem.html", 404, title="Page not found", message="That address does not exist here.")

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            code = "not_found" if exc.status_code == 404 else "invalid"
            body = Problem(code=code, message=str(exc.detail))
            return JSONResponse(body.model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers)
        title = "Page not found" if exc.status_code == 404 else "That did not work"
        return page(request, "problem.html", exc.status_code, title=title, message=str(exc.detail))

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> Response:
        log.error("database unavailable", error=type(exc.orig).__name__ if exc.orig else "OperationalError")
        if _is_api(request):
            return JSONResponse({"code": "unavailable", "message": "Please try again shortly."}, status_code=503)
        return page(
            request,
            "problem.html",
            503,
            title="Please try again shortly",
            message="The service is briefly unavailable. Please try again in a minute.",
        )

    return app
