"""The "Sharing & keys" portal, page by page, through Flask's test client (the browser tests are in
test_portal_browser.py): login gating, CSRF, the security headers, every action through the service
(audited with the logged-in user), can_manage, the maximum of credentials, and Explore."""

from __future__ import annotations

import functools
import logging
import re
from html import unescape
from typing import Any

import pytest
from flask import Flask, g, redirect, request, session, url_for

from flask_clientauth import ConfigurationError
from flask_clientauth.portal import CONTENT_SECURITY_POLICY
from test_service import bulk_clients

from conftest import NOT_DESCRIBED, auth_of, doc3, op

pytest.importorskip("flask_wtf")

PREFIX = "/admin/keys"


def login_required(view: Any) -> Any:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "user" not in session:
            return redirect(url_for("test_login", user="", next=request.path))
        g.portal_user = session["user"]
        return view(*args, **kwargs)

    return wrapper


def mount(app: Flask, **options: Any) -> Flask:
    """The documented recipe: a login of the app's own, the portal under a prefix."""
    app.secret_key = "test secret key"
    auth = auth_of(app)

    @auth.exempt
    def test_login() -> Any:
        user = request.args["user"]
        if not user:
            return "log in", 401
        session["user"] = user
        return "ok"

    app.add_url_rule("/test-login", "test_login", test_login)
    options.setdefault("actor", lambda: session.get("user"))
    app.register_blueprint(auth.portal(login_required, **options), url_prefix=PREFIX)
    return app


@pytest.fixture
def portal_app(make_app: Any, database_url: str) -> Flask:
    return mount(make_app(database_url=database_url))


@pytest.fixture
def web(portal_app: Flask) -> Any:
    client = portal_app.test_client()
    assert client.get("/test-login?user=alice").status_code == 200
    return client


def token(page: Any) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match is not None, page.get_data(as_text=True)
    return match.group(1)


def post(web: Any, path: str, data: dict[str, str] | None = None, *, from_page: str = "/new") -> Any:
    """POST a portal form the way a browser does: with the token of a page it loaded."""
    form = {"csrf_token": token(web.get(PREFIX + from_page)), **(data or {})}
    return web.post(PREFIX + path, data=form)


def text(response: Any) -> str:
    """The page's text as a person reads it: no tags, spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def shown_secret(response: Any) -> str:
    match = re.search(r'<code id="client-secret" class="secret">([^<]+)</code>', response.get_data(as_text=True))
    assert match is not None, response.get_data(as_text=True)
    return unescape(match.group(1))


def shown_id(response: Any) -> str:
    match = re.search(r'<code id="client-id">([^<]+)</code>', response.get_data(as_text=True))
    assert match is not None
    return unescape(match.group(1))


def create(web: Any, name: str = "Branch mobile app", **fields: str) -> tuple[str, str]:
    response = post(web, "/new", {"name": name, "with_secret": "on", **fields}, from_page="/new")
    assert response.status_code == 200, text(response)
    return shown_id(response), shown_secret(response)


def api(app: Flask, cid: str, secret: str) -> Any:
    return app.test_client().get("/api/branches", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})


# -- creation and mounting --------------------------------------------------------------------
def test_the_portal_cannot_be_made_without_a_login(make_app: Any) -> None:
    auth = auth_of(make_app())
    with pytest.raises(TypeError, match="login_required"):
        auth.portal()
    with pytest.raises(TypeError, match="login_required"):
        auth.portal(None)
    with pytest.raises(TypeError, match="can_manage"):
        auth.portal(login_required, can_manage="alice")  # type: ignore[arg-type]


def test_registering_without_a_secret_key_fails_naming_it(make_app: Any) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        app.register_blueprint(auth_of(app).portal(login_required), url_prefix=PREFIX)


def test_pages_answer_though_the_document_does_not_describe_them(make_app: Any, database_url: str) -> None:
    """The portal is exempt from the API key check: login_required guards it, not a 403."""
    spec = doc3({"/items": {"get": op([{"hid": [], "hsec": []}])}}, security=None)  # no global requirement
    app = make_app(spec=spec, database_url=database_url, routes=False)
    app.add_url_rule("/internal", "internal", lambda: "secret")
    mount(app)
    web = app.test_client()
    web.get("/test-login?user=alice")
    page = web.get(PREFIX + "/")
    assert page.status_code == 200
    assert "Clients" in text(page)
    css = web.get(PREFIX + "/static/portal.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()
    # the app's own undocumented routes stay refused
    refused = web.get("/internal")
    assert refused.status_code == 403 and refused.json["moreInformation"] == NOT_DESCRIBED["moreInformation"]


def test_a_logged_out_user_is_sent_to_the_login(portal_app: Flask) -> None:
    anonymous = portal_app.test_client()
    for path in ("/", "/new", "/audit", "/explore"):
        response = anonymous.get(PREFIX + path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/test-login")
    response = anonymous.post(PREFIX + "/new", data={"name": "sneaky"})
    assert response.status_code == 302
    with portal_app.app_context():
        assert auth_of(portal_app).store(portal_app).list() == []


def test_every_page_is_no_store_with_a_strict_csp(web: Any) -> None:
    cid, _ = create(web)
    for path in ("/", "/new", f"/clients/{cid}", f"/clients/{cid}/delete", "/audit", "/explore"):
        response = web.get(PREFIX + path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
        body = response.get_data(as_text=True)
        # nothing the CSP would block: no inline script or style, nothing from another origin
        assert "<script>" not in body and "style=" not in body and "onclick" not in body
        assert "http://" not in body and "https://" not in body
    csp = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["frame-ancestors"] == "'none'"


# -- CSRF ----------------------------------------------------------------------------------------
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(portal_app: Flask, web: Any) -> None:
    cid, secret = create(web)
    for data in ({}, {"csrf_token": "forged"}):
        response = web.post(f"{PREFIX}/clients/{cid}/enabled", data={"enabled": "0", **data})
        assert response.status_code == 400
        assert "The form was not sent by this portal" in text(response)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert web.post(PREFIX + "/new", data={"name": "forged"}).status_code == 400
    assert api(portal_app, cid, secret).status_code == 200
    with portal_app.app_context():
        assert [r.name for r in auth_of(portal_app).store(portal_app).list()] == ["Branch mobile app"]


def test_a_token_of_another_session_is_refused(portal_app: Flask, web: Any) -> None:
    cid, _ = create(web)
    other = portal_app.test_client()
    other.get("/test-login?user=mallory")
    stolen = token(other.get(PREFIX + "/new"))
    assert web.post(f"{PREFIX}/clients/{cid}/enabled", data={"enabled": "0", "csrf_token": stolen}).status_code == 400


def test_over_https_the_form_must_come_from_this_host(portal_app: Flask, web: Any) -> None:
    cid, _ = create(web)
    form = {"enabled": "0", "csrf_token": token(web.get(PREFIX + "/new"))}
    url = f"{PREFIX}/clients/{cid}/enabled"
    refused = web.post(url, data=form, base_url="https://localhost", headers={"Referer": "https://evil.example/"})
    assert refused.status_code == 400
    accepted = web.post(url, data=form, base_url="https://localhost", headers={"Referer": "https://localhost/x"})
    assert accepted.status_code == 302


def test_a_form_posted_from_another_site_is_refused_even_with_a_token(portal_app: Flask, web: Any) -> None:
    """Over plain HTTP too: the browser's ``Sec-Fetch-Site`` (else ``Origin``) must not say another
    site. The portal's own forms send ``Origin: null`` (its ``Referrer-Policy: no-referrer``)."""
    cid, _ = create(web)
    form = {"enabled": "0", "csrf_token": token(web.get(PREFIX + "/new"))}
    url = f"{PREFIX}/clients/{cid}/enabled"
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        assert web.post(url, data=form, headers=headers).status_code == 400, headers
    assert "Branch mobile app enabled Disable" in text(web.get(f"{PREFIX}/clients/{cid}"))
    browser = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert web.post(url, data=form, headers=browser).status_code == 302


def test_the_apps_own_csrfprotect_does_not_get_in_the_way(make_app: Any) -> None:
    from flask_wtf.csrf import CSRFProtect

    app = make_app()
    CSRFProtect(app)
    web = mount(app).test_client()
    web.get("/test-login?user=alice")
    create(web)
    assert web.post(PREFIX + "/new", data={"name": "x"}).status_code == 400


# -- creating and changing clients ------------------------------------------------------------
def test_create_shows_the_secret_once(portal_app: Flask, web: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = post(web, "/new", {"name": "Branch mobile app", "roles": "reports, admin", "with_secret": "on"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "you will not see it again" in text(response)
    assert 'data-copy="client-secret"' in response.get_data(as_text=True)
    cid, secret = shown_id(response), shown_secret(response)
    assert api(portal_app, cid, secret).status_code == 200
    # shown once: the client's page, the list and the audit never show it again
    for path in ("/", f"/clients/{cid}", "/audit", f"/clients/{cid}/audit"):
        assert secret not in web.get(PREFIX + path).get_data(as_text=True)
    assert secret not in caplog.text
    with portal_app.app_context():
        entry = auth_of(portal_app).store(portal_app).audit(cid)[-1]
    assert (entry.action, entry.actor) == ("create", "alice")
    assert "admin, reports" in text(web.get(f"{PREFIX}/clients/{cid}"))


def test_create_without_a_secret_then_set_one(portal_app: Flask, web: Any) -> None:
    response = post(web, "/new", {"name": "Outside the organization"})
    assert response.status_code == 200
    assert 'id="client-secret"' not in response.get_data(as_text=True)
    cid = shown_id(response)
    page = web.get(f"{PREFIX}/clients/{cid}")
    assert "Set API secret" in text(page)
    chosen = "a-chosen-secret-of-enough-length-1"
    done = post(web, f"/clients/{cid}/set-secret", {"secret": chosen}, from_page=f"/clients/{cid}")
    assert done.status_code == 302 and chosen not in done.headers["Location"]
    assert api(portal_app, cid, chosen).status_code == 200
    assert "Set API secret" not in text(web.get(f"{PREFIX}/clients/{cid}"))


def test_bad_input_says_why_and_creates_nothing(portal_app: Flask, web: Any) -> None:
    response = post(web, "/new", {"name": "  ", "with_secret": "on"}, from_page="/new")
    assert response.status_code == 400
    assert "client name" in text(response)
    response = post(web, "/new", {"name": "ok", "expires_at": "tomorrow"}, from_page="/new")
    assert response.status_code == 400 and "not a date" in text(response)
    with portal_app.app_context():
        assert auth_of(portal_app).store(portal_app).list() == []


def test_reset_secret_with_and_without_grace(portal_app: Flask, web: Any) -> None:
    cid, first = create(web)
    response = post(web, f"/clients/{cid}/reset-secret", {"grace": "1h"}, from_page=f"/clients/{cid}")
    assert response.status_code == 200 and "you will not see it again" in text(response)
    second = shown_secret(response)
    assert api(portal_app, cid, first).status_code == 200  # in its grace period
    assert api(portal_app, cid, second).status_code == 200
    assert "the previous secret works until" in text(web.get(f"{PREFIX}/clients/{cid}"))
    third = shown_secret(post(web, f"/clients/{cid}/reset-secret", {"grace": ""}, from_page=f"/clients/{cid}"))
    assert api(portal_app, cid, second).status_code == 401
    assert api(portal_app, cid, third).status_code == 200
    bad = post(web, f"/clients/{cid}/reset-secret", {"grace": "soon"}, from_page=f"/clients/{cid}")
    assert bad.status_code == 302
    assert "grace period" in text(web.get(bad.headers["Location"]))
    assert api(portal_app, cid, third).status_code == 200


def test_verify_says_valid_or_invalid_and_stores_nothing(portal_app: Flask, web: Any) -> None:
    cid, secret = create(web)
    with portal_app.app_context():
        before = len(auth_of(portal_app).store(portal_app).audit(cid))
    valid = post(web, f"/clients/{cid}/verify", {"secret": secret}, from_page=f"/clients/{cid}")
    assert valid.status_code == 200 and "The secret is valid" in text(valid)
    assert secret not in valid.get_data(as_text=True)
    invalid = post(web, f"/clients/{cid}/verify", {"secret": secret + "x"}, from_page=f"/clients/{cid}")
    assert "The secret is invalid" in text(invalid)
    with portal_app.app_context():
        assert len(auth_of(portal_app).store(portal_app).audit(cid)) == before


def test_reset_client_id_keeps_the_secret(portal_app: Flask, web: Any) -> None:
    cid, secret = create(web)
    response = post(web, f"/clients/{cid}/reset-client-id", from_page=f"/clients/{cid}")
    assert response.status_code == 302
    new_id = response.headers["Location"].rsplit("/", 1)[1]
    assert new_id != cid
    assert api(portal_app, cid, secret).status_code == 401
    assert api(portal_app, new_id, secret).status_code == 200
    assert f"replaced by {new_id}" in text(web.get(response.headers["Location"]))


def test_disable_enable_roles(portal_app: Flask, web: Any) -> None:
    cid, secret = create(web)
    post(web, f"/clients/{cid}/enabled", {"enabled": "0"})
    assert api(portal_app, cid, secret).status_code == 403  # client_disabled
    assert "disabled" in text(web.get(PREFIX + "/?status=disabled"))
    post(web, f"/clients/{cid}/enabled", {"enabled": "1"})
    assert api(portal_app, cid, secret).status_code == 200
    post(web, f"/clients/{cid}/roles", {"add": "reports admin"})
    post(web, f"/clients/{cid}/roles", {"remove": "admin"})
    with portal_app.app_context():
        record = auth_of(portal_app).store(portal_app).require(cid)
        actions = [(e.action, e.actor) for e in auth_of(portal_app).store(portal_app).audit(cid)]
    assert record.roles == ("reports",)
    assert actions == [
        ("create", "alice"),
        ("disable", "alice"),
        ("enable", "alice"),
        ("roles", "alice"),
        ("roles", "alice"),
    ]


def test_plans_on_create_and_on_the_client_page(make_app: Any, database_url: str) -> None:
    plans = {"bronze": {"rate_limits": ["5/minute"]}, "gold": {"rate_limits": ["100/second"]}}
    app = mount(make_app(database_url=database_url, CLIENTAUTH_PLANS=plans))
    web = app.test_client()
    web.get("/test-login?user=alice")
    assert '<option value="gold">gold</option>' in web.get(PREFIX + "/new").get_data(as_text=True)
    cid, _ = create(web, plan="bronze")
    post(web, f"/clients/{cid}/plan", {"plan": "gold"}, from_page=f"/clients/{cid}")
    with app.app_context():
        assert auth_of(app).store(app).require(cid).plan == "gold"
    assert "gold" in text(web.get(PREFIX + "/"))
    refused = post(web, f"/clients/{cid}/plan", {"plan": "platinum"}, from_page=f"/clients/{cid}")
    assert "platinum" in text(web.get(refused.headers["Location"]))
    post(web, f"/clients/{cid}/plan", {"plan": ""}, from_page=f"/clients/{cid}")
    with app.app_context():
        record = auth_of(app).store(app).require(cid)
        actions = [(e.action, e.actor) for e in auth_of(app).store(app).audit(cid)]
    assert record.plan is None
    assert actions == [("create", "alice"), ("plan", "alice"), ("plan", "alice")]


def test_delete_asks_first(portal_app: Flask, web: Any) -> None:
    cid, secret = create(web)
    confirm = web.get(f"{PREFIX}/clients/{cid}/delete")
    assert confirm.status_code == 200 and "This cannot be undone" in text(confirm)
    assert api(portal_app, cid, secret).status_code == 200  # the confirmation page changed nothing
    done = post(web, f"/clients/{cid}/delete", from_page=f"/clients/{cid}/delete")
    assert done.status_code == 302 and done.headers["Location"].endswith(PREFIX + "/")
    assert "was deleted" in text(web.get(done.headers["Location"]))
    assert api(portal_app, cid, secret).status_code == 401
    assert web.get(f"{PREFIX}/clients/{cid}").status_code == 404


def test_credentials_up_to_the_maximum(make_app: Any, database_url: str) -> None:
    app = mount(make_app(database_url=database_url, CLIENTAUTH_MAX_CREDENTIALS=2))
    web = app.test_client()
    web.get("/test-login?user=alice")
    cid, _ = create(web)
    added = post(web, f"/clients/{cid}/credentials", {"label": "ci", "with_secret": "on"}, from_page=f"/clients/{cid}")
    assert added.status_code == 200
    second_id, second_secret = shown_id(added), shown_secret(added)
    assert api(app, second_id, second_secret).status_code == 200
    page = text(web.get(f"{PREFIX}/clients/{cid}"))
    assert "has the maximum of 2 credentials" in page and "Add credential" not in page
    refused = post(web, f"/clients/{cid}/credentials", {"with_secret": "on"}, from_page=f"/clients/{cid}")
    assert refused.status_code == 302
    assert "2" in text(web.get(refused.headers["Location"]))
    with app.app_context():
        assert len(auth_of(app).store(app).require(cid).credentials) == 2
    revoked = post(web, f"/clients/{second_id}/revoke", from_page=f"/clients/{cid}")
    assert revoked.status_code == 302
    assert api(app, second_id, second_secret).status_code == 401


def test_list_filters_and_pages(portal_app: Flask, web: Any) -> None:
    with portal_app.app_context():
        store = auth_of(portal_app).store(portal_app)
        for i in range(55):
            store.create(f"client {i:02d}", with_secret=False)
        store.create("Needle", with_secret=False)
    first = text(web.get(PREFIX + "/"))
    assert "56 clients" in first and "page 1 of 2" in first
    assert "client 00" in first and "Needle" not in first
    second = text(web.get(PREFIX + "/?page=2"))
    assert "Needle" in second and "client 00" not in second
    assert "1 client matches" in text(web.get(PREFIX + "/?q=needl"))
    assert web.get(PREFIX + "/?page=9").status_code == 404
    assert web.get(PREFIX + "/?page=x").status_code == 404
    assert web.get(PREFIX + "/?page=\u00b2").status_code == 404  # isdigit() but not int(): was a 500


def test_ten_thousand_clients_page_by_page(portal_app: Flask, web: Any) -> None:
    bulk_clients(portal_app, 10_000)
    first = text(web.get(PREFIX + "/"))
    assert "10000 clients · page 1 of 200" in first
    last = web.get(PREFIX + "/?page=200")
    assert last.status_code == 200
    assert "client 09999" in text(last) and "client 09949" not in text(last)
    assert 'rel="prev" href="/admin/keys/?page=199"' in last.get_data(as_text=True)
    disabled = text(web.get(PREFIX + "/?status=disabled&page=20"))
    assert "1000 clients match · page 20 of 20" in disabled


def test_can_manage_hides_other_users_clients(make_app: Any, database_url: str) -> None:
    def can_manage(record: Any) -> bool:
        return bool(record.name.startswith(session["user"] + ":"))

    app = mount(make_app(database_url=database_url), can_manage=can_manage)
    alice, bob = app.test_client(), app.test_client()
    alice.get("/test-login?user=alice")
    bob.get("/test-login?user=bob")
    cid, secret = create(alice, "alice: reports")
    assert "alice: reports" not in text(bob.get(PREFIX + "/"))
    assert bob.get(f"{PREFIX}/clients/{cid}").status_code == 404
    refused = post(bob, f"/clients/{cid}/enabled", {"enabled": "0"})
    assert refused.status_code == 404
    assert api(app, cid, secret).status_code == 200
    # bob may not create a client outside his reach
    assert post(bob, "/new", {"name": "alice: forged"}, from_page="/new").status_code == 403
    assert "alice: reports" in text(alice.get(PREFIX + "/"))


def test_scope_filters_the_list_in_sql(make_app: Any, database_url: str) -> None:
    from flask_clientauth.models import clients_table

    def mine(record: Any) -> bool:
        return bool(record.name.startswith(session["user"] + ":"))

    app = mount(
        make_app(database_url=database_url),
        can_manage=mine,
        scope=lambda: clients_table.c.name.like(session["user"] + ":%"),
    )
    alice, bob = app.test_client(), app.test_client()
    alice.get("/test-login?user=alice")
    bob.get("/test-login?user=bob")
    cid, _ = create(alice, "alice: reports")
    create(bob, "bob: billing")
    assert "1 client" in text(bob.get(PREFIX + "/")) and "alice: reports" not in text(bob.get(PREFIX + "/"))
    assert bob.get(f"{PREFIX}/clients/{cid}").status_code == 404
    assert "alice: reports" in text(alice.get(PREFIX + "/"))


def test_audit_of_all_and_of_one(portal_app: Flask, web: Any) -> None:
    cid, _ = create(web, "first")
    create(web, "second")
    post(web, f"/clients/{cid}/enabled", {"enabled": "0"})
    everything = text(web.get(PREFIX + "/audit"))
    assert "first" in everything and "second" in everything and "alice" in everything
    one = text(web.get(f"{PREFIX}/clients/{cid}/audit"))
    assert "disable" in one and "second" not in one


# -- Explore -------------------------------------------------------------------------------------
def explore(web: Any, operation: str, **fields: str) -> Any:
    return post(web, "/explore", {"operation": operation, **fields}, from_page="/explore")


def test_explore_lists_every_documented_operation(portal_app: Flask, web: Any) -> None:
    page = web.get(PREFIX + "/explore").get_data(as_text=True)
    with portal_app.app_context():
        operations = auth_of(portal_app).state(portal_app).spec().operations
    assert operations
    for operation in operations:
        assert f'value="{operation.label}"' in page


def test_explore_calls_the_api(portal_app: Flask, web: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cid, secret = create(web)
    ok = explore(web, "GET /branches", client_id=cid, secret=secret)
    assert ok.status_code == 200
    page = text(ok)
    assert "Response: 200 OK" in page and f'"client_id": "{cid}"' in page
    assert "header X-IBM-Client-Secret: [secret]" in page
    assert secret not in ok.get_data(as_text=True)  # not echoed back, not even in the form
    refused = text(explore(web, "GET /branches", client_id="no-such-client", secret=secret))
    assert "Response: 401 UNAUTHORIZED" in refused and "Client ID not registered" in refused
    assert secret not in caplog.text


def test_explore_fills_path_parameters(portal_app: Flask, web: Any) -> None:
    cid, secret = create(web)
    page = text(explore(web, "GET /branches/{branchId}", client_id=cid, secret=secret, **{"path.branchId": "7"}))
    assert "GET /api/branches/7" in page and '"branchId": 7' in page
    missing = text(explore(web, "GET /branches/{branchId}", client_id=cid, secret=secret))
    assert "give a value for the path parameter branchId" in missing


def test_explore_puts_a_query_secret_in_the_query_and_never_shows_it(
    make_app: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = doc3({"/items": {"get": op([{"qid": [], "qsec": []}])}}, servers=[{"url": "/v1"}])
    app = make_app(spec=spec, database_url=database_url, routes=False)
    seen: list[str] = []

    @app.get("/v1/items")
    def items() -> Any:
        seen.append(request.environ.get("QUERY_STRING", ""))
        return {"user_in_g": getattr(g, "portal_user", None)}

    web = mount(app).test_client()
    web.get("/test-login?user=alice")
    cid, secret = create(web)
    response = explore(web, "GET /items", client_id=cid, secret=secret, query="page=2")
    page = text(response)
    assert "Response: 200 OK" in page
    assert f"GET /v1/items?page=2&client_id={cid}&client_secret=[secret]" in page
    # the inner request is the app's own: none of the portal's g (its login) leaks into it
    assert '"user_in_g": null' in page
    assert seen and secret in seen[0]  # the app received it where the document says
    assert secret not in response.get_data(as_text=True) and secret not in caplog.text


def test_explore_masks_a_secret_typed_into_the_query_or_body(
    make_app: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A secret pasted into the query string field is masked in the request line shown, as the
    response's copies are; the portal's own cookies never reach the inner request."""
    caplog.set_level(logging.DEBUG)
    app = make_app(database_url=database_url, routes=False)

    @app.get("/api/branches")
    def branches() -> Any:
        return {"cookies": sorted(request.cookies), "query": request.query_string.decode()}

    web = mount(app).test_client()
    web.get("/test-login?user=alice")
    cid, secret = create(web)
    response = explore(web, "GET /branches", client_id=cid, secret=secret, query=f"debug={secret}")
    page = text(response)
    assert "Response: 200 OK" in page and "GET /api/branches?debug=[secret]" in page
    assert '"cookies": []' in page
    assert secret not in response.get_data(as_text=True) and secret not in caplog.text


def test_explore_of_an_unknown_operation_is_404(web: Any) -> None:
    assert explore(web, "GET /nowhere").status_code == 404
