"""The console's FastAPI app: ``create_app`` is what ``postpay run console`` (or a test) serves."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from postpay.console import routes_auth, routes_billing, routes_customers, routes_holds, routes_parking
from postpay.console.web import Console, LoginRequired, current_session, harden, page

ROUTERS = (
    routes_auth.router,
    routes_billing.router,
    routes_customers.router,
    routes_holds.router,
    routes_parking.router,
)


def create_app(console: Console) -> FastAPI:
    app = FastAPI(title="postpay console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return harden(RedirectResponse("/login", status_code=303))

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "That did not work"
        return page(
            request, "problem.html", current_session(request), exc.status_code, title=title, message=str(exc.detail)
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return page(
            request,
            "problem.html",
            current_session(request),
            400,
            title="That did not work",
            message="The address or form is not valid.",
        )

    return app
