"""Is a configured secret good enough to guard real accounts? Pure, no I/O.

A secret that is empty, a placeholder copied from an example, a public demo value, short, or low in
entropy protects nothing: an HMAC under an empty key can be computed by anyone. ``secret_problem``
says what is wrong with one (never echoing it); the services refuse to start on any problem unless
they serve this machine only.
"""

from __future__ import annotations

import base64
import binascii
import string

from zxcvbn import zxcvbn

MIN_BYTES = 32
# zxcvbn's estimate of the guesses needed, as a power of ten. Random text of 32 hex or alphanumeric
# characters (a WHMCS API credential's shape) scores 28-32 (28 the least of 3,000 samples: zxcvbn sees
# chance digit runs and words in random text too); phrases, keyboard walks and sequences of that length
# score 4-22. 25 lies between, with room on both sides.
MIN_GUESSES_LOG10 = 25.0
_ZXCVBN_MAX = 72

# Text that only ever appears in examples and templates, never in a generated secret.
PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "replace_me",
    "placeholder",
    "example",
    "your-secret",
    "yoursecret",
    "secret-here",
    "fill-in",
    "xxxxxxxx",
    "demo-",
    "demo_",
    "not-the-secret",
    "password",
)
# The values the simulators and the demo use: public, so never a production credential.
DEMO_VALUES = frozenset(
    {
        "demo-secret",
        "demo-identifier",
        "demo-solusvm-admin-token",
        "demo-admin-password",
        "secret",
        "test",
        "admin",
        "changeme",
        "password",
    }
)


def placeholder_problem(value: str, *, demo_values: frozenset[str] = frozenset()) -> str | None:
    """Why ``value`` is no secret at all (empty, a placeholder, a public demo value), or None."""
    if not value.strip():
        return "is empty"
    lowered = value.strip().casefold()
    if lowered in DEMO_VALUES or value in demo_values:
        return "is a public demo value"
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder from an example"
    return None


def secret_problem(value: str, *, demo_values: frozenset[str] = frozenset()) -> str | None:
    """Why ``value`` is too weak for a signing or API secret, or None."""
    problem = placeholder_problem(value, demo_values=demo_values)
    if problem:
        return problem
    if len(value.encode("utf-8")) < MIN_BYTES:
        return f"is shorter than {MIN_BYTES} bytes"
    if zxcvbn(value[:_ZXCVBN_MAX])["guesses_log10"] < MIN_GUESSES_LOG10:
        return "is too predictable (words, repeats or sequences); use random bytes, e.g. `openssl rand -hex 32`"
    return None


def fernet_key_problem(value: str, *, demo_values: frozenset[str] = frozenset()) -> str | None:
    """Why ``value`` is not a usable random Fernet key (32 random bytes, url-safe base64), or None."""
    problem = placeholder_problem(value, demo_values=demo_values)
    if problem:
        return problem
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return "is not a Fernet key (32 url-safe base64-encoded bytes)"
    if len(raw) != 32:
        return "is not a Fernet key (32 url-safe base64-encoded bytes)"
    # 32 random bytes are all printable ASCII once in ~10^14 tries: such a key is text dressed as a key.
    printable = set(string.printable.encode())
    if len(set(raw)) < 16 or all(byte in printable for byte in raw):
        return "is not random; generate one with Fernet.generate_key()"
    return None
