"""``@auth.exempt`` / ``@auth.require`` apply where they are put, or say that they cannot.

On a ``MethodView`` method they apply to that method of the view only; on a function wrapped by
another decorator they still apply; one that matches no view is logged. A blueprint's decorator
applies to the endpoints that blueprint registered, not to an app endpoint merely named like them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView

from flask_clientauth import ClientAuth

from conftest import auth_of, doc3, headers, new_client, op, view

#: The document asks for ID + secret everywhere, except /open (public).
SPEC = doc3({"/items": {"get": op(), "post": op()}, "/open": {"get": op([]), "post": op([])}})


def _app(make_app: Any) -> tuple[Flask, ClientAuth]:
    app = make_app(spec=SPEC, routes=False)
    return app, auth_of(app)


def test_exempt_on_a_method_view_method_applies_to_that_method_only(make_app: Any) -> None:
    app, auth = _app(make_app)

    class Items(MethodView):
        @auth.exempt
        def get(self) -> str:
            return "list"

        def post(self) -> str:
            return "created"

    app.add_url_rule("/items", view_func=Items.as_view("items"))
    client = app.test_client()
    assert client.get("/items").status_code == 200
    assert client.head("/items").status_code == 200  # MethodView answers HEAD with get()
    assert client.post("/items").status_code == 401
    cid, secret = new_client(app)
    assert client.post("/items", headers=headers(cid, secret)).status_code == 200


def test_require_on_a_method_wins_over_the_class_and_the_document(make_app: Any) -> None:
    app, auth = _app(make_app)

    @auth.exempt
    class Open(MethodView):
        def get(self) -> str:
            return "read"

        @auth.require("hid", "hsec")
        def post(self) -> str:
            return "written"

    app.add_url_rule("/open", view_func=Open.as_view("open"))
    client = app.test_client()
    cid, secret = new_client(app)
    assert client.get("/open").status_code == 200
    assert client.post("/open").status_code == 401
    assert client.post("/open", headers=headers(cid)).status_code == 401
    assert client.post("/open", headers=headers(cid, secret)).status_code == 200
    rows = {r.method: r.policy.origin for r in auth.routes(app) if r.rule == "/open"}
    assert rows["POST"] == "require test_require_on_a_method_wins_over_the_class_and_the_document.<locals>.Open.post"
    assert rows["GET"].startswith("exempt ")


def test_a_decorator_under_another_decorator_still_applies(make_app: Any) -> None:
    app, auth = _app(make_app)

    def logged(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return f(*args, **kwargs)

        return wrapper

    @app.route("/items")
    @logged
    @auth.exempt
    def items() -> str:
        return "ok"

    @app.route("/open")
    @logged
    @auth.require("hid", "hsec")
    def opened() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/items").status_code == 200
    assert client.get("/open").status_code == 401


def test_a_decorator_that_matches_no_view_is_logged(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, auth = _app(make_app)

    @auth.require("hid", "hsec")
    def helper() -> str:  # never registered as a view
        return "x"

    app.add_url_rule("/open", "open", view)
    auth.routes(app)
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "matched no route" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "test_a_decorator_that_matches_no_view_is_logged.<locals>.helper" in warnings[0]


def test_an_app_endpoint_named_like_an_exempt_blueprints_is_not_exempt(make_app: Any) -> None:
    app, auth = _app(make_app)
    docs = Blueprint("docs", __name__)
    auth.exempt(docs)
    docs.add_url_rule("/guide", "guide", view)
    app.register_blueprint(docs, url_prefix="/docs")
    app.add_url_rule("/items", endpoint="docs.report", view_func=view)
    client = app.test_client()
    assert client.get("/docs/guide").status_code == 200
    assert client.get("/items").status_code == 401
    rows = {r.rule: r.policy.origin for r in auth.routes(app) if r.method == "GET"}
    assert rows["/items"] == "global"  # the document's requirement, not the blueprint's exemption


def test_blueprint_registered_twice_and_nested_keeps_to_its_own_endpoints(make_app: Any) -> None:
    app, auth = _app(make_app)
    parent, child = Blueprint("parent", __name__), Blueprint("child", __name__)
    auth.exempt(parent)  # before the child is nested: the child is found when the parent registers
    child.add_url_rule("/c", "c", view)
    parent.register_blueprint(child, url_prefix="/child")
    parent.add_url_rule("/p", "p", view)
    app.register_blueprint(parent, url_prefix="/one")
    app.register_blueprint(parent, url_prefix="/two", name="second")
    # app endpoints that only look like the blueprints' own
    app.add_url_rule("/items", endpoint="second.fake", view_func=view)
    app.add_url_rule("/open", endpoint="parent.child.fake", view_func=view, methods=["POST"])
    client = app.test_client()
    for url in ("/one/p", "/one/child/c", "/two/p", "/two/child/c"):
        assert client.get(url).status_code == 200, url
    assert client.get("/items").status_code == 401
    assert client.post("/open").status_code == 200  # public in the document, not by the blueprint
    origins = {r.rule: r.policy.origin for r in auth.routes(app)}
    assert origins["/open"] == "operation"


def test_a_blueprint_decorated_after_it_was_registered_keeps_to_its_own_endpoints(make_app: Any) -> None:
    # what APIFlask / flask-smorest users do with the docs blueprint the framework registered
    app, auth = _app(make_app)
    admin = Blueprint("admin", __name__)
    admin.add_url_rule("/open", "open", view)
    app.register_blueprint(admin)
    app.add_url_rule("/open", endpoint="admin.fake", view_func=view, methods=["POST"])
    auth.require("hid", "hsec")(admin)
    client = app.test_client()
    assert client.get("/open").status_code == 401
    assert client.post("/open").status_code == 200  # the app's own endpoint: public in the document
