"""Single sign-on into SolusVM 2: short-lived, single-use links bound to one customer.

A link is minted when the customer clicks "Log in to SolusVM 2" (through the WHMCS hook, or on the
signup pages in the browser that accepted the terms, shortly after), lives at most ``sso_link_seconds``
(≤ 60 s) and works once. A link minted in a browser session also needs that session's cookie. Redeeming it claims it first (so a second use fails even if
SolusVM 2 is slow), then asks SolusVM 2 for a one-time token and sends the browser to the panel.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.signup import store
from services.signup.accounts import account_view
from services.signup.schema import Signup, Stage
from services.signup.settings import SignupSettings
from services.signup.tokens import BadToken, BrowserSession, Signer, mint_link, read_link
from services.signup.verification import LinkProblem
from shared.clock import Clock
from shared.db import Database
from shared.logging import get_logger
from shared.ports import SolusVM
from shared.upstream.errors import UpstreamError

log = get_logger("postpay.signup.sso")


@dataclass(frozen=True)
class SsoRedirect:
    url: str


@dataclass(frozen=True)
class SolusVMUnavailable:
    signup: Signup


@dataclass(frozen=True)
class MintedLink:
    path: str
    url: str
    expires_in_seconds: int


class SingleSignOn:
    def __init__(self, db: Database, settings: SignupSettings, signer: Signer, solusvm: SolusVM, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.signer = signer
        self.solusvm = solusvm
        self.clock = clock

    def enrolled_by_client(self, whmcs_client_id: int) -> Signup | None:
        with self.db.transaction() as session:
            signup = store.signup_by_client(session, whmcs_client_id)
        return signup if signup is not None and signup.stage == Stage.ENROLLED else None

    def mint(self, signup_id: uuid.UUID, *, browser: BrowserSession | None = None) -> MintedLink | None:
        """A fresh login link for an enrolled customer (None if not enrolled). With ``browser`` the
        link only works with that session's cookie."""
        now = self.clock()
        lifetime = timedelta(seconds=self.settings.sso_link_seconds)
        with self.db.transaction() as session:
            signup = store.get_signup(session, signup_id)
            if signup is None or signup.stage != Stage.ENROLLED:
                return None
            link = store.ensure_link(
                session,
                link_id=uuid.uuid4(),
                signup_id=signup.id,
                purpose="sso",
                now=now,
                lifetime=lifetime,
                session_binding=browser.binding if browser is not None else None,
            )
        path = f"/sso/{mint_link(self.signer, 'sso', link.id, link.expires_at)}"
        return MintedLink(path, self.settings.public_url + path, int((link.expires_at - now).total_seconds()))

    def redeem(self, token: str, browser: BrowserSession | None) -> SsoRedirect | LinkProblem | SolusVMUnavailable:
        try:
            claims = read_link(self.signer, "sso", token)
        except BadToken:
            return LinkProblem("invalid")
        now = self.clock()
        with self.db.transaction() as session:
            link = store.get_link(session, claims.link_id, "sso")
            signup = store.get_signup(session, link.signup_id) if link is not None else None
            if link is None or signup is None or signup.stage != Stage.ENROLLED or signup.solusvm_user_id is None:
                return LinkProblem("invalid")
            if link.session_binding is not None and (
                browser is None or browser.signup_id != signup.id or browser.binding != link.session_binding
            ):
                # Someone else's link: refuse it and leave it usable by its owner.
                log.warning("login link used outside the session it was minted for", signup_id=str(signup.id))
                return LinkProblem("foreign", signup)
            if link.used_at is not None:
                return LinkProblem("used", signup)
            if claims.expired(now) or now >= link.expires_at:
                return LinkProblem("expired", signup)
            if _locked(session, signup):
                # SolusVM 2 would refuse a locked user's token anyway; say why instead of an upstream error.
                return LinkProblem("locked", signup)
            if not store.use_link(session, link.id, now):
                return LinkProblem("used", signup)
        try:
            one_time_token = self.solusvm.create_one_time_token(signup.solusvm_user_id)
        except UpstreamError as exc:
            log.warning("SolusVM 2 refused or missed the one-time token", error=type(exc).__name__)
            return SolusVMUnavailable(signup)
        log.info("single sign-on", signup_id=str(signup.id), solusvm_user_id=signup.solusvm_user_id)
        return SsoRedirect(self.solusvm.sso_login_url(one_time_token))


def _locked(session: Any, signup: Signup) -> bool:
    if signup.whmcs_client_id is None:
        return False
    account = account_view(session, signup.whmcs_client_id)
    return account is not None and account.status == "locked"
