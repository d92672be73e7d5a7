"""``postpay signups show|resend EMAIL``: for "I never got the email".

``show`` tells where the signup is and when each email went out; ``resend`` queues a new verification
email exactly as the page's "send it again" does (a new link; the old ones stay valid until they expire),
and records who asked and why in the console's audit log.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from postpay.lookups.cli_support import echo_json, fail, lookup_context
from postpay.operators.actor import actor_name
from postpay.operators.audit import record_action
from services.signup import public as signup
from shared.bus.rabbit import CONNECTION_ERRORS

signups_app = typer.Typer(help="Signups in progress: their stage and emails.", no_args_is_help=True)
EmailArgument = Annotated[str, typer.Argument(help="The customer's email address (any case).", show_default=False)]
NEEDS = ("signup",)


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"  # type: ignore[attr-defined]


@signups_app.command("show")
def show(
    email: EmailArgument, as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False
) -> None:
    """Stage, WHMCS client, SolusVM 2 user, and when the verification and welcome emails were sent."""
    with lookup_context(NEEDS) as context, context.db.transaction() as session:
        found = signup.signup_by_email(session, email)
    if found is None:
        fail(f"no signup for {email}")
        return
    data = {key: value for key, value in found.__dict__.items() if key != "encrypted_password"}
    if as_json:
        echo_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(key.replace("_", " "), _when(value) if hasattr(value, "isoformat") else str(value))
    Console(width=200).print(table)
    Console().print(_advice(found))


def _advice(found: signup.Signup) -> str:
    stage = found.stage
    if stage is signup.Stage.CREATING_CLIENT:
        return "The WHMCS client is being created; the first verification email follows it."
    if stage is signup.Stage.AWAITING_VERIFICATION:
        return "Waiting for the customer to confirm the email: `postpay signups resend` sends a new link."
    if stage is signup.Stage.AWAITING_TERMS:
        return "The email is verified; the customer has not accepted the terms yet."
    if stage is signup.Stage.PROVISIONING:
        return "The terms are accepted; the SolusVM 2 user is being provisioned."
    return "Enrolled." + ("" if found.welcome_sent_at else " The welcome email has not been sent yet.")


@signups_app.command("resend")
def resend(
    email: EmailArgument,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (goes to the audit log).")],
    by: Annotated[str | None, typer.Option("--by", help="Who is acting (default: user@host).")] = None,
) -> None:
    """Send a new verification email (for a signup still waiting for its email to be confirmed)."""
    if not reason.strip():
        raise typer.BadParameter("say why: the audit log records it", param_hint="--reason")
    with lookup_context(NEEDS + ("console",)) as context:
        with context.db.transaction() as session:
            found = signup.signup_by_email(session, email)
            if found is None:
                fail(f"no signup for {email}")
                return
            if found.stage is not signup.Stage.AWAITING_VERIFICATION:
                fail(f"nothing to resend: {found.email} is at stage {found.stage.value}. {_advice(found)}")
                return
            event_id = signup.queue_verification_resend(session, found)
            record_action(
                session,
                actor=actor_name(by),
                action="signup.resend",
                target=found.email,
                reason=reason,
                detail=f"VerificationEmailRequested {event_id}",
                now=context.deps.clock(),
            )
        try:
            shipped = context.publish_outbox(signup.tables.outbox, ("signup",))
        except CONNECTION_ERRORS:
            shipped = 0
    where = "published" if shipped else "queued in the signup outbox (the signup service's relay publishes it)"
    typer.echo(f"a new verification email for {found.email} is {where}")


def register(app: typer.Typer) -> None:
    app.add_typer(signups_app, name="signups")
