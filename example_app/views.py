"""The branches API's operations (as documented in ``openapi.yaml`` / ``openapi3.yaml``).

There is no security code here: Flask-ClientAuth checks every request against the document
before a view runs, and a view reads the caller from ``current_client``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request, url_for

from flask_clientauth import current_client

api = Blueprint("api", __name__, url_prefix="/api")

#: What the documents' pattern ``\S`` calls blank: ECMAScript's white space and line terminators
#: (OpenAPI patterns are ECMA-262). ``str.strip()`` differs: it also strips U+001C-U+001F and
#: U+0085 (names the document accepts) and keeps U+FEFF.
BLANK = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(map(chr, range(0x2000, 0x200B)))

#: The branches every app starts with (fictitious addresses and numbers).
BRANCHES: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "Downtown",
        "type": "branch",
        "address": {
            "street": "100 Main Street",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701",
            "country": "US",
        },
        "phone": "+1-217-555-0101",
    },
    {
        "id": 2,
        "name": "Riverside",
        "type": "branch",
        "address": {
            "street": "42 River Road",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62702",
            "country": "US",
        },
        "phone": "+1-217-555-0102",
    },
    {
        "id": 3,
        "name": "Airport Terminal B",
        "type": "atm",
        "address": {
            "street": "1200 Capital Airport Drive",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62707",
            "country": "US",
        },
        "phone": None,
    },
]

NAME_MAX = 100
TYPES = ("branch", "atm")


class BranchBook:
    """The app's branches: an in-memory list, one per app and server process."""

    def __init__(self) -> None:
        self._branches = copy.deepcopy(BRANCHES)
        self._lock = threading.Lock()

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._branches)

    def get(self, branch_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = next((b for b in self._branches if b["id"] == branch_id), None)
            return copy.deepcopy(found)

    def add(self, branch: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            branch = {"id": max((b["id"] for b in self._branches), default=0) + 1, **branch}
            self._branches.append(branch)
            return copy.deepcopy(branch)


def _book() -> BranchBook:
    return current_app.extensions["branches"]  # type: ignore[no-any-return]


@api.get("/branches")
def list_branches() -> Any:
    """Every branch (client ID and client secret)."""
    return jsonify(_book().all())


@api.get("/branches/<int:branchId>")
def get_branch(branchId: int) -> Any:  # the spec names the parameter branchId
    """One branch (client ID only: the operation's own ``security`` overrides the document's)."""
    branch = _book().get(branchId)
    if branch is None:
        abort(404, description=f"No branch with ID {branchId}")
    return jsonify(branch)


@api.post("/branches")
def create_branch() -> Any:
    """Add a branch, recording which client application added it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="The body must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip(BLANK) or len(name) > NAME_MAX:
        abort(400, description=f"'name' must be a non-empty string of at most {NAME_MAX} characters")
    kind = data.get("type", "branch")
    if kind not in TYPES:
        abort(400, description=f"'type' must be one of {', '.join(TYPES)}")
    address = data.get("address", {})
    if not isinstance(address, dict) or not all(isinstance(v, str) for v in address.values()):
        abort(400, description="'address' must be an object of strings")
    phone = data.get("phone")
    if phone is not None and not isinstance(phone, str):
        abort(400, description="'phone' must be a string")
    branch = _book().add(
        {
            "name": name.strip(BLANK),
            "type": kind,
            "address": address,
            "phone": phone,
            # The spec requires a client ID and secret here, so there always is a client.
            "created_by": current_client.name if current_client else None,
        }
    )
    response = jsonify(branch)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_branch", branchId=branch["id"])
    return response


@api.get("/status")
def status() -> Any:
    """Liveness check; public (``security: []``)."""
    return jsonify(status="ok")
