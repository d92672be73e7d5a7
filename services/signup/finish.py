""" "Finish signing up" from the client area: a customer who confirmed their email but never accepted
the terms gets to the terms from the WHMCS panel, in whatever browser they are in.

WHMCS has logged the client in (its owner: the action checks), which proves the account as well as the
mailbox did. On the button's click the WHMCS action asks for a link, signed with the shared secret
(purpose ``finish``); the link is single use, lives ``sso_link_seconds`` (at most a minute) and exists
only for a client whose signup waits for its terms. Opening it starts a verified session for that
signup, which may accept the terms and nothing more, and goes to them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from services.signup import store
from services.signup.schema import Signup, Stage
from services.signup.settings import SignupSettings
from services.signup.sso import MintedLink
from services.signup.tokens import BadToken, Signer, mint_link, read_link
from services.signup.verification import LinkProblem
from shared.clock import Clock
from shared.db import Database
from shared.logging import get_logger

log = get_logger("postpay.signup.finish")


@dataclass(frozen=True)
class Finishing:
    signup: Signup


class FinishSigningUp:
    def __init__(self, db: Database, settings: SignupSettings, signer: Signer, clock: Clock) -> None:
        self.db, self.settings, self.signer, self.clock = db, settings, signer, clock

    def waiting_for_terms(self, whmcs_client_id: int) -> Signup | None:
        with self.db.transaction() as session:
            signup = store.signup_by_client(session, whmcs_client_id)
        return signup if signup is not None and signup.stage == Stage.AWAITING_TERMS else None

    def mint(self, whmcs_client_id: int) -> MintedLink | None:
        """A fresh link to the terms for this client's signup, or None if it does not wait for them."""
        now = self.clock()
        with self.db.transaction() as session:
            signup = store.signup_by_client(session, whmcs_client_id)
            if signup is None or signup.stage != Stage.AWAITING_TERMS:
                return None
            link = store.ensure_link(
                session,
                link_id=uuid.uuid4(),
                signup_id=signup.id,
                purpose="finish",
                now=now,
                lifetime=timedelta(seconds=self.settings.sso_link_seconds),
                revoke_others=True,
            )
        path = f"/finish/{mint_link(self.signer, 'finish', link.id, link.expires_at)}"
        log.info("link to the terms minted for the client area", signup_id=str(signup.id))
        return MintedLink(path, self.settings.public_url + path, int((link.expires_at - now).total_seconds()))

    def redeem(self, token: str) -> Finishing | LinkProblem:
        try:
            claims = read_link(self.signer, "finish", token)
        except BadToken:
            return LinkProblem("invalid")
        now = self.clock()
        with self.db.transaction() as session:
            link = store.get_link(session, claims.link_id, "finish")
            signup = store.get_signup(session, link.signup_id) if link is not None else None
            if link is None or signup is None:
                return LinkProblem("invalid")
            if link.used_at is not None or link.revoked_at is not None:
                return LinkProblem("used", signup)
            if claims.expired(now) or now >= link.expires_at:
                return LinkProblem("expired", signup)
            if signup.stage != Stage.AWAITING_TERMS:
                return LinkProblem("finished", signup)
            if not store.use_link(session, link.id, now):
                return LinkProblem("used", signup)
        return Finishing(signup)
