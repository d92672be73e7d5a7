"""The WHMCS side (deploy/whmcs): the PHP is valid, and served by PHP's own web server over minimal
stubs of WHMCS, it renders both panels from a running signup service and turns the button into a
login that lands in SolusVM 2, for the client's owner (or a user the operator allows) only."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select

from services.signup import schema
from services.signup.accounts import accounts
from shared.bus.memory import InMemoryBus
from shared.db import Database
from simulators.smtp import free_port
from tests.support.enrollment import TEST_PANEL_SECRET, Enrollment, local_public_url, signup_settings, unique_email
from tests.support.system import Upstreams

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "whmcs"
PHP = shutil.which("php") or "/usr/bin/php"

# Just enough of WHMCS for the hook and the action: the constant, add_hook, Menu::context, the menu
# item class, the signed-in user and the client they manage (here taken from cookies a test sets), the
# client's owner, and the user's permissions on the client (WHMCS keeps them on the user-client pivot).
STUB_INIT = r"""<?php
namespace { define('WHMCS', true); }
namespace WHMCS\View\Menu {
    class Item {
        public $children = [];
        public function addChild($name, array $attributes = []) { $this->children[$name] = $attributes; return $this; }
    }
}
namespace WHMCS\User {
    class Permissions { private $names; public function __construct(array $names) { $this->names = $names; }
                        public function get() { return $this->names; } }
    class Pivot { private $names; public function __construct(array $names) { $this->names = $names; }
                  public function getPermissions() { return new Permissions($this->names); } }
    class Relation { public $pivot; public function __construct(array $names) { $this->pivot = new Pivot($names); } }
    class UserClients {
        public function find($clientId) {
            if ((int) $clientId !== (int) ($_COOKIE['stub_client_id'] ?? 0)) { return null; }
            $names = array_filter(explode(',', (string) ($_COOKIE['stub_permissions'] ?? '')));
            return new Relation(array_values($names));
        }
    }
    class User { public $id; public function __construct($id) { $this->id = $id; }
                 public function clients() { return new UserClients(); } }
    class Client {
        public $id;
        public function __construct($id) { $this->id = $id; }
        public function owner() { return new User((int) ($_COOKIE['stub_owner_id'] ?? 0)); }
    }
}
namespace WHMCS\Authentication {
    class CurrentUser {
        public function user() {
            $id = (int) ($_COOKIE['stub_user_id'] ?? 0);
            return $id > 0 ? new \WHMCS\User\User($id) : null;
        }
        public function client() {
            $id = (int) ($_COOKIE['stub_client_id'] ?? 0);
            return $id > 0 ? new \WHMCS\User\Client($id) : null;
        }
    }
}
namespace {
    $GLOBALS['stub_hooks'] = [];
    function add_hook($name, $priority, $callback) { $GLOBALS['stub_hooks'][$name][] = $callback; }
    class Menu {
        public static function context($name) { return $name === 'client' ? (new \WHMCS\Authentication\CurrentUser())->client() : null; }
    }
    foreach (glob(__DIR__ . '/includes/hooks/*.php') as $hook) { require_once $hook; }
}
"""
# The client-area homepage, reduced to drawing the panels the hooks added.
STUB_HOMEPAGE = r"""<?php
require __DIR__ . '/init.php';
$panels = new WHMCS\View\Menu\Item();
foreach ($GLOBALS['stub_hooks']['ClientAreaHomepagePanels'] ?? [] as $hook) { $hook($panels); }
foreach ($panels->children as $name => $panel) {
    echo '<section id="' . htmlspecialchars($name) . '" data-color="' . htmlspecialchars($panel['extras']['color']) . '">'
        . '<h3>' . htmlspecialchars($panel['label']) . '</h3>' . $panel['bodyHtml'] . '</section>';
}
"""


def php_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.php"))


@pytest.mark.parametrize("path", php_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_the_php_is_valid(path: Path) -> None:
    result = subprocess.run([PHP, "-l", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def enrollment(tmp_path: Path) -> Iterator[Enrollment]:
    db = Database(f"sqlite:///{tmp_path / 'signup.sqlite'}")
    settings = signup_settings(public_url=local_public_url())
    with (
        Upstreams() as upstreams,
        Enrollment(upstreams, InMemoryBus(retry_delays=[0.2, 0.5]), db, settings=settings).start() as running,
    ):
        running.serve()
        yield running
    db.dispose()


@pytest.fixture
def whmcs(tmp_path: Path, enrollment: Enrollment) -> Iterator[str]:
    """A WHMCS-shaped document root with the shipped files installed, served by ``php -S``."""
    curl = subprocess.run([PHP, "-r", "exit(function_exists('curl_init') ? 0 : 1);"], timeout=30)
    assert curl.returncode == 0, "this PHP has no curl, which the hook needs (Debian: apt-get install php-curl)"
    root = tmp_path / "whmcs"
    shutil.copytree(DEPLOY, root, ignore=shutil.ignore_patterns("*.md"))
    (root / "init.php").write_text(STUB_INIT)
    (root / "index.php").write_text(STUB_HOMEPAGE)
    write_config(root, url=enrollment.settings.public_url)
    port = free_port()
    server = subprocess.Popen(
        [PHP, "-S", f"127.0.0.1:{port}", "-t", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/index.php", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "php -S did not start"
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def write_config(root: Path, *, url: str, secret: str = TEST_PANEL_SECRET, sso_permission: str = "") -> None:
    config = (
        f"<?php return ['url' => '{url}', 'shared_secret' => '{secret}', 'timeout_seconds' => 5, "
        f"'connect_timeout_seconds' => 2, 'sso_permission' => '{sso_permission}'];"
    )
    (root / "includes" / "postpay_solusvm2" / "config.php").write_text(config)


OWNER = 500


def as_client(client_id: int) -> httpx.Client:
    """Signed in as the client's owner."""
    return as_user(client_id, user_id=OWNER)


def as_user(client_id: int, *, user_id: int, permissions: tuple[str, ...] = ()) -> httpx.Client:
    """Signed in as ``user_id``, managing ``client_id`` (whose owner is user ``OWNER``)."""
    cookies = {
        "stub_client_id": str(client_id),
        "stub_user_id": str(user_id),
        "stub_owner_id": str(OWNER),
        "stub_permissions": ",".join(permissions),
    }
    return httpx.Client(cookies=cookies, timeout=10)


def sso_links(enrollment: Enrollment) -> int:
    with enrollment.db.transaction() as session:
        return len(session.execute(select(schema.links.c.id).where(schema.links.c.purpose == "sso")).all())


def test_both_panels_render_and_the_button_logs_in_to_solusvm(enrollment: Enrollment, whmcs: str) -> None:
    email = unique_email()
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    enrolled_id, stranger_id = signup.whmcs_client_id, signup.whmcs_client_id + 1000

    with as_client(stranger_id) as browser:
        page = browser.get(f"{whmcs}/index.php").text
        assert "<h3>Not enrolled in SolusVM 2</h3>" in page and 'data-color="blue"' in page
        assert f'href="{enrollment.settings.public_url}/"' in page
        refused = browser.get(f"{whmcs}/solusvm2_sso.php")
        assert refused.status_code == 404 and "not enrolled in SolusVM 2" in refused.text
        assert f'href="{enrollment.settings.public_url}/"' in refused.text, "a way to sign up"

    with as_client(enrolled_id) as browser:
        page = browser.get(f"{whmcs}/index.php").text
        assert "<h3>Enrolled in SolusVM 2</h3>" in page and 'data-color="green"' in page
        assert 'href="solusvm2_sso.php"' in page and "Log in to SolusVM 2" in page
        to_postpay = browser.get(f"{whmcs}/solusvm2_sso.php")
        assert to_postpay.status_code == 302
        link = to_postpay.headers["location"]
        assert link.startswith(f"{enrollment.settings.public_url}/sso/")
        to_solusvm = browser.get(link)
        assert to_solusvm.status_code == 302
        landed = browser.get(to_solusvm.headers["location"])
        assert landed.status_code == 200 and email in landed.text
        assert browser.get(link).status_code == 409, "the link worked once"


@pytest.mark.parametrize(
    ("status", "colour", "title"), [("suspended", "amber", "Suspended"), ("locked", "red", "locked")]
)
def test_a_suspended_or_locked_account_shows_in_the_panels_colour_and_title(
    enrollment: Enrollment, whmcs: str, status: str, colour: str, title: str
) -> None:
    email = unique_email()
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    with enrollment.db.transaction() as session:
        session.execute(
            insert(accounts).values(
                whmcs_client_id=signup.whmcs_client_id,
                status=status,
                revision=1,
                updated_at=datetime.now(UTC),
                overdue_invoice_ids="[41]" if status == "suspended" else "[]",
            )
        )
    with as_client(signup.whmcs_client_id) as browser:
        page = browser.get(f"{whmcs}/index.php").text
    assert f'data-color="{colour}"' in page and title in page, page


def test_a_visitor_who_is_not_signed_in_is_sent_to_log_in_and_sees_no_panel(enrollment: Enrollment, whmcs: str) -> None:
    with httpx.Client(timeout=10) as browser:
        assert browser.get(f"{whmcs}/index.php").text == ""
        response = browser.get(f"{whmcs}/solusvm2_sso.php")
        assert response.status_code == 302 and response.headers["location"] == "login.php"


def test_with_a_wrong_secret_the_homepage_shows_without_the_panel(
    enrollment: Enrollment, whmcs: str, tmp_path: Path
) -> None:
    config = tmp_path / "whmcs" / "includes" / "postpay_solusvm2" / "config.php"
    config.write_text(config.read_text().replace(TEST_PANEL_SECRET, "not-the-secret"))
    with as_client(1) as browser:
        response = browser.get(f"{whmcs}/index.php")
        assert response.status_code == 200 and response.text == ""


def test_a_user_who_is_not_the_owner_may_not_log_in_to_solusvm_and_is_told_why(
    enrollment: Enrollment, whmcs: str
) -> None:
    email = unique_email()
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    for permissions in ((), ("invoices", "productsso")):  # with no permission named, only the owner
        with as_user(signup.whmcs_client_id, user_id=OWNER + 1, permissions=permissions) as sub_user:
            refused = sub_user.get(f"{whmcs}/solusvm2_sso.php")
        assert refused.status_code == 403 and "owner" in refused.text, refused.text
    assert sso_links(enrollment) == 0, "no login link was minted for a sub-user"
    with as_client(signup.whmcs_client_id) as owner:
        assert owner.get(f"{whmcs}/solusvm2_sso.php").status_code == 302
    assert sso_links(enrollment) == 1


def test_the_operator_may_name_a_permission_that_lets_other_users_log_in(
    enrollment: Enrollment, whmcs: str, tmp_path: Path
) -> None:
    email = unique_email()
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    write_config(tmp_path / "whmcs", url=enrollment.settings.public_url, sso_permission="productsso")
    with as_user(signup.whmcs_client_id, user_id=OWNER + 1, permissions=("invoices", "productsso")) as allowed:
        to_postpay = allowed.get(f"{whmcs}/solusvm2_sso.php")
        assert to_postpay.status_code == 302 and to_postpay.headers["location"].startswith(
            enrollment.settings.public_url
        )
    with as_user(signup.whmcs_client_id, user_id=OWNER + 2, permissions=("invoices",)) as not_allowed:
        refused = not_allowed.get(f"{whmcs}/solusvm2_sso.php")
        assert refused.status_code == 403 and "productsso" in refused.text


def test_postpay_not_answering_is_said_quickly(enrollment: Enrollment, whmcs: str, tmp_path: Path) -> None:
    write_config(tmp_path / "whmcs", url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with as_client(1) as browser:
        response = browser.get(f"{whmcs}/solusvm2_sso.php")
    assert response.status_code == 503 and "not reachable" in response.text


def test_the_hook_talks_to_postpay_with_curl_and_short_timeouts() -> None:
    client = (DEPLOY / "includes" / "postpay_solusvm2" / "client.php").read_text()
    for needed in ("curl_init", "CURLOPT_CONNECTTIMEOUT", "CURLOPT_TIMEOUT", "CURLOPT_FOLLOWLOCATION"):
        assert needed in client, needed
    assert "file_get_contents" not in client


def test_a_customer_who_never_accepted_the_terms_finishes_from_the_client_area(
    enrollment: Enrollment, whmcs: str
) -> None:
    email = unique_email("unfinished")
    assert enrollment.register(email).status_code == 303
    (link,) = enrollment.verification_links(email)
    assert enrollment.open_link(link).status_code == 303
    enrollment.wait_for_terms()
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None

    with as_client(signup.whmcs_client_id) as browser:
        page = browser.get(f"{whmcs}/index.php").text
        assert "<h3>Finish signing up</h3>" in page and 'data-color="amber"' in page
        assert 'href="solusvm2_finish_signup.php"' in page
        to_postpay = browser.get(f"{whmcs}/solusvm2_finish_signup.php")
        assert to_postpay.status_code == 302
        link = to_postpay.headers["location"]
        assert link.startswith(f"{enrollment.settings.public_url}/finish/")
    terms = httpx.Client(timeout=10)  # the customer's browser, which has never seen the signup site
    opened = terms.get(link)
    assert opened.status_code == 303 and opened.headers["location"] == "/signup/terms"
    assert 'type="checkbox"' in terms.get(f"{enrollment.settings.public_url}/signup/terms").text

    with as_user(signup.whmcs_client_id, user_id=OWNER + 1, permissions=("productsso",)) as other:
        refused = other.get(f"{whmcs}/solusvm2_finish_signup.php")
        assert refused.status_code == 403 and "owner" in refused.text, "only the owner accepts the terms"
    with as_client(signup.whmcs_client_id + 1000) as stranger:
        nothing = stranger.get(f"{whmcs}/solusvm2_finish_signup.php")
        assert nothing.status_code == 404
