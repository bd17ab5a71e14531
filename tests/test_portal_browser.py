"""The "Sharing & keys" portal in a real browser: headless Debian Chromium driven by Playwright,
against ``python -m example_app`` (what ``make run`` starts) serving over HTTP.

With ``PORTAL_SCREENSHOTS=1`` the same tests write the screenshots of docs/portal.rst into
docs/_static/portal/.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from servers import REPO, Server, example_env, free_port

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
SHOTS = REPO / "docs" / "_static" / "portal"

if not CHROMIUM.exists() and os.environ.get("CI"):
    pytest.fail("CI must run the browser tests: .ci/run installs Debian's chromium package", pytrace=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python (the test extra)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("portal-browser")
    port = free_port()
    env = example_env(root / "instance", "openapi2", PORT=str(port), EXAMPLE_ADMIN_PASSWORD=PASSWORD)
    srv = Server([sys.executable, "-m", "example_app"], env, root, port, "openapi2")
    try:
        srv.wait_ready()
        srv.wait_for_output(r"Portal:\s+http://\S+/admin/keys/")
        yield srv
    finally:
        assert srv.stop() == 0, srv.output()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1200, "height": 860}, permissions=["clipboard-read", "clipboard-write"]
    )
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(
        "console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None
    )
    try:
        yield tab
    finally:
        context.close()
    # nothing the Content-Security-Policy blocked, no script error
    assert errors == []


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("PORTAL_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, next_path: str = "/admin/keys/") -> None:
    page.goto(next_path)
    assert "/login" in page.url
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def branches(server: Server, client_id: str, secret: str) -> requests.Response:
    headers = {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}
    return requests.get(server.url + "/api/branches", headers=headers, timeout=10)


def explore(page: Any, client_id: str, secret: str) -> str:
    """Explore ``GET /api/branches`` with these credentials; the response panel's text."""
    page.goto("/admin/keys/explore")
    form = page.locator("form", has=page.locator("input[name=operation][value='GET /branches']"))
    page.locator("details.operation", has=form).locator("summary").click()
    form.locator("input[name=client_id]").fill(client_id)
    form.locator("input[name=secret]").fill(secret)
    form.locator("button[type=submit]").click()
    result = page.locator("section.result")
    result.wait_for()
    return str(result.inner_text())


def test_a_logged_out_user_is_sent_to_the_login(page: Any, server: Server) -> None:
    page.goto("/admin/keys/explore")
    assert re.search(r"/login\?next=/admin/keys/explore$", page.url)
    assert page.locator("h1").inner_text() == "Log in"
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("main")
    screenshot(page, "login")
    # and the pages' own URLs stay closed to a client without the session
    response = requests.get(server.url + "/admin/keys/", allow_redirects=False, timeout=10)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_keys_from_creation_to_deletion(page: Any, server: Server) -> None:
    log_in(page)
    screenshot(page, "clients")
    page.click("text=Create API key +")
    page.fill("input[name=name]", "Partner bank")
    page.fill("input[name=description]", "Their branch finder")
    screenshot(page, "create")
    page.click("button:has-text('Save')")
    assert "you will not see it again" in page.inner_text("main")
    client_id = page.inner_text("#client-id")
    shown = page.inner_text("#client-secret")
    page.click("button[data-copy=client-secret]")
    page.wait_for_selector("button[data-copy=client-secret]:has-text('Copied')")
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == shown and secret.startswith("fcsk_")
    screenshot(page, "secret")
    assert "no-store" in page.request.get("/admin/keys/").headers["cache-control"]
    assert secret not in page.url

    # the copied secret works against the API over HTTP
    assert branches(server, client_id, secret).status_code == 200

    # Explore: a random client ID is refused as API Connect refuses it, the real one passes
    refused = explore(page, uuid.uuid4().hex, secret)
    assert "401" in refused and "Client ID not registered" in refused
    ok = explore(page, client_id, secret)
    assert "200 OK" in ok and "Downtown" in ok
    assert secret not in page.content()  # neither echoed nor kept in the form
    screenshot(page, "explore")

    # reset the secret: the old one gets 401 at once
    page.goto(f"/admin/keys/clients/{client_id}")
    screenshot(page, "client")
    page.locator("form[action$='/reset-secret'] button").first.click()
    new_secret = page.inner_text("#client-secret")
    assert new_secret != secret
    assert branches(server, client_id, secret).status_code == 401
    assert branches(server, client_id, new_secret).status_code == 200

    # disable, then delete after the confirmation page
    page.goto(f"/admin/keys/clients/{client_id}")
    page.click("button:has-text('Disable')")
    assert "Partner bank is disabled" in page.inner_text("main")
    assert branches(server, client_id, new_secret).status_code == 403
    page.click("text=Delete…")
    assert "This cannot be undone" in page.inner_text("main")
    page.click("button:has-text('Delete key')")
    assert "was deleted" in page.inner_text("main")
    assert branches(server, client_id, new_secret).status_code == 401
    page.goto("/admin/keys/audit")
    assert "delete" in page.inner_text("table.audit") and "admin" in page.inner_text("table.audit")
    screenshot(page, "audit")


def test_a_post_without_the_csrf_token_is_refused(page: Any, server: Server) -> None:
    log_in(page)
    page.click("text=Create API key +")
    page.fill("input[name=name]", "Kept")
    page.click("button:has-text('Save')")
    client_id = page.inner_text("#client-id")
    secret = page.inner_text("#client-secret")
    # the browser's own session cookie, but no token: what a forged cross-site form sends
    forged = page.request.post(f"/admin/keys/clients/{client_id}/enabled", form={"enabled": "0"})
    assert forged.status == 400
    assert "not sent by this portal" in forged.text()
    assert branches(server, client_id, secret).status_code == 200
