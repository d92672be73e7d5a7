"""What the client-area panel (and the account page) show a customer, from the signup's own records:
the signup's stage, the account standing the provisioner announced, and the figures kept from events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from services.signup import store
from services.signup.accounts import account_view
from services.signup.figures_store import latest_invoices
from services.signup.schema import Signup, Stage
from shared.periods import zone

if TYPE_CHECKING:
    from services.signup.web.support import Web

PanelState = Literal["not_enrolled", "awaiting_terms", "setting_up", "active", "suspended", "locked"]
ENROLLED_STATES = ("active", "suspended", "locked")


@dataclass(frozen=True)
class Panel:
    state: PanelState
    overdue_ids: tuple[int, ...]
    title: str
    html: str


def panel_state(
    signup: Signup | None, status: str | None, overdue: tuple[int, ...]
) -> tuple[PanelState, tuple[int, ...]]:
    if signup is None:
        return "not_enrolled", ()
    if signup.stage == Stage.AWAITING_TERMS:
        return "awaiting_terms", ()
    if signup.stage in (Stage.LINKING_CLIENT, Stage.PROVISIONING):
        return "setting_up", ()
    if signup.stage != Stage.ENROLLED:
        return "not_enrolled", ()
    if status in (None, "active"):
        return "active", ()
    return ("suspended", overdue) if status == "suspended" else ("locked", ())


def panel_title(state: PanelState, invoices: tuple[int, ...]) -> str:
    if state == "suspended" and invoices:
        which = ("invoice " if len(invoices) == 1 else "invoices ") + ", ".join(f"#{number}" for number in invoices)
        return f"Suspended — pay {which} to reactivate"
    return {
        "not_enrolled": "Not enrolled in SolusVM 2",
        "awaiting_terms": "Finish signing up",
        "setting_up": "SolusVM 2 account being set up",
        "active": "Enrolled in SolusVM 2",
        "suspended": "Suspended — pay your overdue invoices to reactivate",
        "locked": "SolusVM 2 account locked",
    }[state]


def account_figures(web: Web, signup: Signup) -> dict[str, Any]:
    """The month so far and the latest invoices of an enrolled customer, for ``_account.html``."""
    client_id = signup.whmcs_client_id
    if client_id is None:
        return {"usage": None, "usage_as_of": "", "invoices": []}
    with web.journey.db.transaction() as session:
        account = account_view(session, client_id)
        newest = latest_invoices(session, client_id, 1)
    overdue = account.overdue_invoice_ids if account is not None else ()
    currency = signup.billing_currency or (newest[0].currency if newest else None)
    usage = web.figures.usage(client_id, currency)
    invoices = web.figures.invoices(client_id, overdue, pay_url=web.settings.invoice_url)
    local = usage.as_of.astimezone(zone(web.settings.billing_timezone)) if usage else None
    as_of = f"{local:%Y-%m-%d %H:%M} ({web.settings.billing_timezone})" if local else ""
    return {"usage": usage, "usage_as_of": as_of, "invoices": invoices}


def panel_content(web: Web, client_id: int) -> Panel:
    from services.signup.web.support import templates  # the templates live with the web

    settings = web.settings
    with web.journey.db.transaction() as session:
        signup = store.signup_by_client(session, client_id)
        account = account_view(session, client_id)
    state, overdue = panel_state(
        signup, account.status if account else None, account.overdue_invoice_ids if account else ()
    )
    figures = account_figures(web, signup) if signup is not None and state in ENROLLED_STATES else {}
    html = templates.get_template("panel.html").render(
        state=state,
        landing_url=f"{settings.public_url}/",
        sso_action_url=settings.panel_sso_action_url,
        finish_action_url=settings.panel_finish_action_url,
        brand=settings.brand,
        overdue=[(number, settings.panel_invoice_url.replace("{invoice_id}", str(number))) for number in overdue],
        **figures,
    )
    return Panel(state, overdue, panel_title(state, overdue), html)
