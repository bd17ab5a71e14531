"""A deliberately simple login for the example: one operator, a password, a session cookie.

It is what guards the "Sharing & keys" portal (``/admin/keys``) and the admin JSON API
(``/admin/api``); a real app passes its own login decorator (``flask_login.login_required``, ...).

``EXAMPLE_ADMIN_USER``
    The operator's user name (default ``admin``).
``EXAMPLE_ADMIN_PASSWORD``
    Their password. Unset, nobody can log in; ``python -m example_app`` (``make run``) then makes a
    random one for the run and prints it with the portal's URL.
``SECRET_KEY``
    Signs the session. Unset, a random key is made once and kept in the instance folder
    (``secret_key``), so sessions survive restarts and every gunicorn worker reads the same key.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import ValidationError, generate_csrf, validate_csrf

login = Blueprint("login", __name__)

DEFAULT_USER = "admin"
SESSION_KEY = "example_user"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in</title>
<link rel="stylesheet" href="{{ url_for('clientauth_portal.static', filename='portal.css') }}"></head>
<body><header class="top"><span class="brand">Branches API · operators</span></header>
<main><h1>Log in</h1>
{% if not enabled %}<p class="flash error" role="alert">Logging in is off: set EXAMPLE_ADMIN_PASSWORD
(python -m example_app makes and prints one).</p>{% endif %}
{% if failed %}<p class="flash error" role="alert">Wrong user name or password.</p>{% endif %}
<form method="post" class="stack">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next }}">
<label>User name <input name="username" autocomplete="username" required value="{{ user }}"></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit" class="primary">Log in</button>
</form></main></body></html>"""


def current_user() -> str | None:
    """The logged-in operator's name (the actor of the portal's and the admin API's audit entries)."""
    user = session.get(SESSION_KEY)
    return user if isinstance(user, str) else None


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anyone not logged in to the login page, and back here afterwards."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("login.log_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def api_login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The same login for the admin JSON API: a JSON 401 instead of a redirect."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            body = {"httpCode": "401", "httpMessage": "Unauthorized", "moreInformation": "Log in at /login first"}
            return jsonify(body), 401
        return view(*args, **kwargs)

    return wrapper


def _local(target: str) -> str:
    """``next`` only if it is a path of this site (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("clientauth_portal.clients")
    return target


@login.route("/login", methods=["GET", "POST"])
def log_in() -> Any:
    password = current_app.config.get("EXAMPLE_ADMIN_PASSWORD") or ""
    user = current_app.config.get("EXAMPLE_ADMIN_USER") or DEFAULT_USER
    target = _local(request.values.get("next", ""))
    failed = False
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            abort(400, "The login form expired: reload the page and try again.")
        given_user = request.form.get("username", "")
        given = request.form.get("password", "")
        if password and hmac.compare_digest(given_user.encode(), user.encode()) & hmac.compare_digest(
            given.encode(), password.encode()
        ):
            session.clear()
            session[SESSION_KEY] = user
            return redirect(target)
        failed = True
    page = render_template_string(
        PAGE,
        enabled=bool(password),
        failed=failed,
        next=target,
        user=request.form.get("username", ""),
        csrf_token=generate_csrf,
    )
    return page, 401 if failed else 200


@login.route("/logout", methods=["GET", "POST"])
def log_out() -> Any:
    session.clear()
    return redirect(url_for("login.log_in"))


@login.get("/")
def home() -> Any:
    return redirect(url_for("clientauth_portal.clients"))


def secret_key(app: Flask) -> str:
    """The configured ``SECRET_KEY``, else one kept in the instance folder (made on first use)."""
    if app.config.get("SECRET_KEY"):
        return str(app.config["SECRET_KEY"])
    path = os.path.join(app.instance_path, "secret_key")
    os.makedirs(app.instance_path, exist_ok=True)
    try:
        with open(path, encoding="ascii") as file:
            key = file.read().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key)
    return key
