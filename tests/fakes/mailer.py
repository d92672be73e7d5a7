"""An in-memory mailer with ``SmtpMailer.send``'s signature: what was sent, to whom, under which
idempotency key. Like the real one, a repeated key gives the same Message-ID; ``fail`` makes the next
send raise (``MailUnavailable`` is what the real one raises)."""

from __future__ import annotations

from shared.mail import Email
from shared.ports import Mailer
from tests.fakes.failures import Failures


class FakeMailer:
    """Satisfies ``shared.ports.Mailer``."""

    CONTROLS = ("fail", "to")

    def __init__(self) -> None:
        self.sent: list[tuple[Email, str | None]] = []
        self.failures = Failures()

    def fail(self, method: str, error: BaseException, *, times: int = 1, after: bool = False) -> None:
        self.failures.fail(method, error, times=times, after=after)

    def to(self, address: str) -> list[Email]:
        return [email for email, _ in self.sent if email.to == address]

    def send(self, email: Email, *, idempotency_key: str | None = None) -> str:
        self.failures.check("send")
        self.sent.append((email, idempotency_key))
        self.failures.check("send", after=True)
        return f"<{idempotency_key or len(self.sent)}@fake.example>"


_port: type[Mailer] = FakeMailer  # mypy: the fake is a Mailer
