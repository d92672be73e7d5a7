"""What wraps every request of the signup web: a body limit, and the security headers of every answer.

The body limit is applied before FastAPI reads anything: a declared length over the limit is refused
at once, and a body without one is read only up to the limit. Every answer carries a
Content-Security-Policy that allows no script and no inline style (the pages have neither: their one
stylesheet is ``/assets/signup.css``), so injected markup could run nothing. The API docs page loads
Swagger UI from its CDN and gets its own, narrower exception.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from services.signup.settings import SignupSettings
from services.signup.web.support import templates

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STYLESHEET = (Path(__file__).resolve().parent.parent / "templates" / "signup.css").read_bytes()
SWAGGER_CDN = "https://cdn.jsdelivr.net"


def page_policy(solusvm_origin: str | None, logo_url: str | None = None) -> str:
    # form-action covers the redirects a form starts: "Log in to SolusVM 2" posts here and ends there.
    form_action = " ".join(filter(None, ("'self'", solusvm_origin)))
    # The brand's logo may live elsewhere (https only): exactly its origin may serve images.
    images = " ".join(filter(None, ("'self'", origin_of(logo_url) if logo_url else None)))
    return (
        f"default-src 'none'; style-src 'self'; img-src {images}; form-action "
        + form_action
        + "; frame-ancestors 'none'; base-uri 'none'"
    )


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


class SecurityHeaders:
    """Adds the policy and its companions to every answer that does not set its own."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", policy.encode("ascii")),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in self.headers if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuses (413) a request whose body is larger than ``max_bytes``, before the app reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int, settings: SignupSettings) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, send)
            return
        body, more, disconnected = b"", True, False
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected, more = True, False
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(scope, send)
                return
        await self.app(scope, _replay(body, receive, disconnected), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        limit = f"{self.max_bytes // 1024} KiB"
        if scope.get("path", "").startswith("/api/"):
            body = json.dumps(
                {"code": "too_large", "message": f"The request body is larger than {limit}.", "errors": []}
            ).encode()
            content_type = b"application/json"
        else:
            body = (
                templates.get_template("problem.html")
                .render(
                    brand=self.settings.brand,
                    settings=self.settings,
                    title="That was more than a form holds",
                    message=f"A form can send at most {limit}. Please go back and shorten what you typed.",
                )
                .encode()
            )
            content_type = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive, disconnected: bool) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnected:
            return {"type": "http.disconnect"}
        return await receive()

    return replay


def stylesheet(settings: SignupSettings) -> bytes:
    """The stylesheet with the brand's accent colour (a validated hex colour) and the text colour that
    reads on it: a later rule of the same variables, so it holds in light and dark mode alike."""
    brand = settings.brand
    return (
        STYLESHEET + f"\n/* brand */\n:root {{ --accent: {brand.accent}; --on-accent: {brand.on_accent}; }}\n".encode()
    )


def add_assets_and_docs(app: FastAPI, settings: SignupSettings) -> None:
    """The stylesheet, and the API docs page with a policy that lets exactly its own scripts run."""
    css = stylesheet(settings)

    @app.get("/assets/signup.css", include_in_schema=False)
    def serve_stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    docs = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API")
    html = docs.body.decode() if isinstance(docs.body, bytes) else str(docs.body)
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'" for script in inline
    )
    policy = (
        f"default-src 'none'; script-src {SWAGGER_CDN} {hashes}; style-src {SWAGGER_CDN}; "
        f"img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    )

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})
