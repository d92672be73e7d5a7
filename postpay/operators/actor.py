"""Who is acting, for commands run from a shell."""

from __future__ import annotations

import getpass
import socket


def actor_name(by: str | None) -> str:
    return (by or f"{getpass.getuser()}@{socket.gethostname()}")[:200]
