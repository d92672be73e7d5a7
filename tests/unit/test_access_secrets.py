"""Weak secrets are refused at start (issue 15, item 3).

An empty ``POSTPAY_PANEL_SHARED_SECRET`` with a public URL used to start, and an HMAC under an empty key
minted login links for any client. Every secret setting is now refused at start, with an error naming
the variable, when it is empty, a known placeholder or demo value, or (for the secrets postpay and
the upstreams generate) shorter than 32 bytes or low in entropy, unless the signup pages are served on
loopback only (the demo, the tests). The shipped examples carry no value that would be accepted.
"""

from __future__ import annotations

import base64
import os
import random
import re
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import SecretStr

from services.signup.service import build
from services.signup.settings import DEMO_PANEL_SECRET, DEMO_PASSWORD_KEY, DEMO_SECRET_KEY, SignupSettings
from shared.dependencies import Dependencies
from shared.errors import ConfigurationError
from shared.secrets import secret_problem
from shared.service import ServiceDefinition
from shared.settings import UpstreamSettings

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "https://signup.example.com"


def good_upstream() -> UpstreamSettings:
    return UpstreamSettings(
        solusvm_api_token=SecretStr(secrets.token_urlsafe(40)),
        whmcs_identifier=SecretStr(secrets.token_hex(16)),
        whmcs_secret=SecretStr(secrets.token_hex(16)),
    )


def good_signup(**changes: object) -> SignupSettings:
    values: dict[str, object] = {
        "public_url": PUBLIC,
        "signup_port": 0,
        "secret_key": SecretStr(secrets.token_hex(32)),
        "password_keys": [SecretStr(Fernet.generate_key().decode())],
        "panel_shared_secret": SecretStr(secrets.token_hex(32)),
    }
    values.update(changes)
    return SignupSettings(**values)  # type: ignore[arg-type]


def start(signup: SignupSettings, upstream: UpstreamSettings | None = None) -> object:
    overrides = {SignupSettings: signup, UpstreamSettings: upstream or good_upstream()}
    return preflight(build(Dependencies(whmcs=None, solusvm=None, mailer=None, overrides=overrides)))  # type: ignore[arg-type]


def preflight(service: ServiceDefinition) -> ServiceDefinition:
    """What `postpay run signup` checks before serving (building alone checks nothing: every process
    builds every service)."""
    for check in service.preflight:
        check()
    return service


def fernet_key_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


WEAK_SIGNING = {
    "empty": "",
    "short": "x7#Kq-2pL!",
    "placeholder": "replace-me-openssl-rand-hex-32-replace-me",
    "low-entropy": "a" * 48,
    "a sequence": "abcdefghijklmnopqrstuvwxyz0123456789",
    "a phrase": "hostingcompanywhmcsapisecretkey1",
    "a keyboard walk": "qwertyuiopasdfghjklzxcvbnm123456",
}
WEAK_FERNET = {
    "empty": "",
    "placeholder": "replace-me-a-fernet-key",
    "demo": DEMO_PASSWORD_KEY,
    "zero entropy": fernet_key_of(b"a" * 32),
    "a sentence dressed as a key": fernet_key_of(b"my password key, keep it secret!"),
}


def test_good_secrets_start() -> None:
    assert start(good_signup()).name == "signup"  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", WEAK_SIGNING)
@pytest.mark.parametrize(
    ("field", "variable", "demo"),
    [
        ("secret_key", "POSTPAY_SECRET_KEY", DEMO_SECRET_KEY),
        ("panel_shared_secret", "POSTPAY_PANEL_SHARED_SECRET", DEMO_PANEL_SECRET),
    ],
)
def test_a_weak_signing_secret_is_refused_naming_its_variable(field: str, variable: str, demo: str, kind: str) -> None:
    for value in (WEAK_SIGNING[kind], demo):
        with pytest.raises(ConfigurationError, match=variable):
            start(good_signup(**{field: SecretStr(value)}))


@pytest.mark.parametrize("kind", WEAK_FERNET)
def test_a_weak_password_key_is_refused_naming_its_variable(kind: str) -> None:
    keys = [
        SecretStr(Fernet.generate_key().decode()),
        SecretStr(WEAK_FERNET[kind]),
    ]  # an old key kept for rotation, too
    with pytest.raises(ConfigurationError, match="POSTPAY_PASSWORD_KEYS"):
        start(good_signup(password_keys=keys))


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("whmcs_secret", "POSTPAY_WHMCS_SECRET"),
        ("solusvm_api_token", "POSTPAY_SOLUSVM_API_TOKEN"),
        ("whmcs_identifier", "POSTPAY_WHMCS_IDENTIFIER"),
    ],
)
@pytest.mark.parametrize(
    "value", ["", "replace-me", "demo-secret", "demo-identifier", "demo-solusvm-admin-token", "changeme"]
)
def test_a_placeholder_upstream_credential_is_refused_naming_its_variable(
    field: str, variable: str, value: str
) -> None:
    upstream = good_upstream().model_copy(update={field: SecretStr(value)})
    with pytest.raises(ConfigurationError, match=variable):
        start(good_signup(), upstream)


def test_every_weak_secret_is_named_at_once() -> None:
    signup = good_signup(secret_key=SecretStr(""), panel_shared_secret=SecretStr("change-me"))
    with pytest.raises(ConfigurationError) as refused:
        start(signup, good_upstream().model_copy(update={"whmcs_secret": SecretStr("replace-me")}))
    for variable in ("POSTPAY_SECRET_KEY", "POSTPAY_PANEL_SHARED_SECRET", "POSTPAY_WHMCS_SECRET"):
        assert variable in str(refused.value)
    assert "change-me" not in str(refused.value) and "replace-me" not in str(refused.value), "values are never echoed"


def test_on_loopback_the_demo_secrets_and_placeholders_still_start() -> None:
    local = SignupSettings(public_url="http://127.0.0.1:8480", signup_port=0)
    assert start(local, UpstreamSettings()).name == "signup"  # type: ignore[attr-defined]
    placeholder = good_signup(
        public_url="http://localhost:8480", panel_shared_secret=SecretStr("replace-me-in-production")
    )
    assert start(placeholder, UpstreamSettings()).name == "signup"  # type: ignore[attr-defined]


def env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / "deploy" / ".env.example").read_text(), flags=re.M)
    return dict(pairs)


def secret_example() -> dict[str, str]:
    documents = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "secret.example.yaml").read_text())
    (document,) = [doc for doc in documents if doc and doc["metadata"]["name"] == "postpay-secrets"]
    return {name: str(value) for name, value in document["stringData"].items()}


SECRET_VARIABLES = (
    "POSTPAY_SECRET_KEY",
    "POSTPAY_PASSWORD_KEYS",
    "POSTPAY_PANEL_SHARED_SECRET",
    "POSTPAY_WHMCS_SECRET",
    "POSTPAY_SOLUSVM_API_TOKEN",
    "POSTPAY_WHMCS_IDENTIFIER",
)


@pytest.mark.parametrize(
    "example", [env_example, secret_example], ids=["deploy/.env.example", "k8s secret.example.yaml"]
)
def test_no_shipped_example_value_would_be_accepted(example: object, monkeypatch: pytest.MonkeyPatch) -> None:
    values = example()  # type: ignore[operator]
    for name in [name for name in os.environ if name.startswith("POSTPAY_")]:
        monkeypatch.delenv(name)
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, values.get(name, ""))
    monkeypatch.setenv("POSTPAY_PUBLIC_URL", PUBLIC)
    with pytest.raises(ConfigurationError) as refused:
        preflight(build(Dependencies(whmcs=None, solusvm=None, mailer=None)))
    for name in SECRET_VARIABLES:
        assert name in str(refused.value), f"{name}={values.get(name, '')!r} from the example would be accepted"


def test_postpay_run_exits_non_zero_with_a_clear_error_naming_the_variable(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("POSTPAY_")}
    env.update(
        {
            "POSTPAY_PUBLIC_URL": PUBLIC,
            "POSTPAY_SIGNUP_PORT": "0",
            "POSTPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite'}",
            "POSTPAY_SECRET_KEY": secrets.token_hex(32),
            "POSTPAY_PASSWORD_KEYS": Fernet.generate_key().decode(),
            "POSTPAY_PANEL_SHARED_SECRET": "",
            "POSTPAY_WHMCS_SECRET": secrets.token_hex(16),
            "POSTPAY_WHMCS_IDENTIFIER": secrets.token_hex(16),
            "POSTPAY_SOLUSVM_API_TOKEN": secrets.token_urlsafe(40),
        }
    )
    command = [sys.executable, "-c", "from postpay.cli import main; main()", "run", "signup", "--no-migrate"]
    try:
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("postpay started with an empty POSTPAY_PANEL_SHARED_SECRET and a public URL")
    assert result.returncode != 0
    assert "POSTPAY_PANEL_SHARED_SECRET" in result.stderr and "empty" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("alphabet", ["0123456789abcdef", string.ascii_letters + string.digits])
def test_random_32_character_credentials_are_never_refused(alphabet: str) -> None:
    """A WHMCS API secret is 32 random characters: refusing one now and then (zxcvbn finds chance words
    and digit runs in random text) would stop a production start for nothing."""
    chance = random.Random(2026)  # seeded: the same samples on every run
    for _ in range(300):
        value = "".join(chance.choice(alphabet) for _ in range(32))
        assert secret_problem(value) is None, value
