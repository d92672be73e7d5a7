"""What ``postpay demo --serve`` adds for a person at a browser: an index of every URL, the captured
mailbox (to open a verification link after signing up on the landing page), and each customer's
client-area panel as the WHMCS hook shows it.

The panel preview does what ``deploy/whmcs`` does in PHP: signed server-to-server requests to the
signup service, the panel's HTML in the page, and the "Log in to SolusVM 2" action minting a fresh link.
"""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from postpay.demo.journey import Enrolled
from services.signup.public import PanelPurpose, panel_signature
from simulators.smtp import SmtpCapture, text_of

_URL = re.compile(r"https?://[^\s<>\"]+")


@dataclass(frozen=True)
class Links:
    landing: str
    whmcs: str
    solusvm: str


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{white-space:pre-wrap;"
        "background:#f6f6f6;padding:1em}section{border:1px solid #ccc;padding:0 1em;margin:1em 0}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
        headers={"Cache-Control": "no-store"},
    )


def create_showcase(links: Links, smtp: SmtpCapture, panel_secret: str, customers: Sequence[Enrolled]) -> Starlette:
    def signed(client_id: int, purpose: PanelPurpose) -> dict[str, str]:
        timestamp, nonce = int(time.time()), secrets.token_hex(16)  # a new nonce each: the service refuses replays
        return {
            "X-Postpay-Timestamp": str(timestamp),
            "X-Postpay-Nonce": nonce,
            "X-Postpay-Signature": panel_signature(panel_secret, timestamp, nonce, client_id, purpose),
        }

    async def index(request: Request) -> Response:
        rows = "".join(
            f"<li>{html.escape(c.spec.name)} &lt;{html.escape(c.spec.email)}&gt;: "
            f"<a href='/clients/{c.whmcs_client_id}/'>client-area panel</a>, "
            f"<a href='{links.whmcs}/_sim/invoices?client_id={c.whmcs_client_id}'>invoices in WHMCS</a></li>"
            for c in customers
        )
        return _page(
            "postpay demo",
            (
                f"<ul><li><a href='{links.landing}/'>Landing page</a> (sign up; the email arrives in the "
                f"<a href='/mail'>captured mailbox</a>)</li>"
                f"<li>WHMCS simulator: <a href='{links.whmcs}/_sim/clients'>clients</a>, "
                f"<a href='{links.whmcs}/_sim/invoices'>invoices</a>, <a href='{links.whmcs}/_sim/emails'>emails</a></li>"
                f"<li>SolusVM 2 simulator: <a href='{links.solusvm}/_sim/users'>users</a>, "
                f"<a href='{links.solusvm}/_sim/state'>whole state</a></li></ul>"
                f"<h2>Customers</h2><ul>{rows}</ul>"
            ),
        )

    async def mailbox(request: Request) -> Response:
        sections = []
        for message in reversed(smtp.messages):
            text = _URL.sub(lambda m: f"<a href='{m.group(0)}'>{m.group(0)}</a>", html.escape(text_of(message)))
            sections.append(
                f"<section><p><b>To:</b> {html.escape(str(message['To']))}<br><b>Subject:</b> "
                f"{html.escape(str(message['Subject']))}</p><pre>{text}</pre></section>"
            )
        return _page("Captured email", "".join(sections) or "<p>No email yet.</p>")

    async def panel(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{links.landing}/api/v1/panel/{client_id}",
                headers={**signed(client_id, "panel"), "Accept": "application/json"},
            )
        if answer.status_code != 200:
            return _page("Panel unavailable", f"<p>The signup service answered {answer.status_code}.</p>")
        view = answer.json()
        return _page(
            f"WHMCS client area of client {client_id} (preview)",
            f"<section><h3>{html.escape(view['title'])}</h3>{view['html']}</section>",
        )

    async def login(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(f"{links.landing}/api/v1/panel/{client_id}/sso", headers=signed(client_id, "sso"))
        if answer.status_code != 200:
            return _page("No login link", f"<p>The signup service answered {answer.status_code}.</p>")
        return RedirectResponse(answer.json()["url"], status_code=302, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/mail", mailbox),
            Route("/clients/{client_id:int}/", panel),
            Route("/clients/{client_id:int}/solusvm2_sso.php", login),
        ]
    )
