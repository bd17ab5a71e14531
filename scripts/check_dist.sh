#!/usr/bin/env bash
# Packaging smoke test: build the sdist and the wheel, check them with twine, check what they
# contain, install the wheel into a fresh virtualenv (outside the source tree) and use it there:
# import, `flask clients --help`, `init-db` from the shipped migrations, create a client and
# answer a request with it.
#
#   scripts/check_dist.sh                 # uses .venv/bin/python (needs the dev extra: build, twine)
#   PYTHON=python3.12 scripts/check_dist.sh
#   KEEP_DIST=dist scripts/check_dist.sh  # also copy the checked files to dist/
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
PYTHON=${PYTHON:-$root/.venv/bin/python}

work=$(mktemp -d "${TMPDIR:-/tmp}/clientauth-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "build sdist and wheel"
"$PYTHON" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/*.tar.gz)
wheel=$(ls "$work"/dist/*.whl)
echo "$(basename "$sdist")"
echo "$(basename "$wheel")"

step "twine check"
"$PYTHON" -m twine check --strict "$sdist" "$wheel"

step "contents"
"$PYTHON" - "$sdist" "$wheel" <<'PY'
import sys
import tarfile
import zipfile
from fnmatch import fnmatch

sdist, wheel = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    in_wheel = zf.namelist()
with tarfile.open(sdist) as tf:
    in_sdist = ["/".join(name.split("/")[1:]) for name in tf.getnames()]

def require(names, patterns, where):
    missing = [p for p in patterns if not any(fnmatch(n, p) for n in names)]
    if missing:
        sys.exit(f"{where} lacks: {', '.join(missing)}")

require(in_wheel, [
    "flask_clientauth/__init__.py",
    "flask_clientauth/py.typed",
    "flask_clientauth/migrations/__init__.py",
    "flask_clientauth/migrations/env.py",
    "flask_clientauth/migrations/script.py.mako",
    "flask_clientauth/migrations/versions/*.py",
    "flask_clientauth/templates/clientauth/layout.html",
    "flask_clientauth/templates/clientauth/explore.html",
    "flask_clientauth/static/clientauth/portal.css",
    "flask_clientauth/static/clientauth/portal.js",
    "*.dist-info/entry_points.txt",
], "the wheel")
stray = [n for n in in_wheel if n.split("/")[0] in ("tests", "migrations", "example_app", "benchmarks", "docs")]
if stray:
    sys.exit(f"the wheel installs top-level packages it must not: {stray[:5]}")
if any("__pycache__" in n or n.endswith(".pyc") for n in in_wheel + in_sdist):
    sys.exit("compiled files in the distributions")
require(in_sdist, [
    "README.md", "CHANGES.md", "setup.cfg", "pyproject.toml", "MANIFEST.in",
    "flask_clientauth/py.typed",
    "flask_clientauth/templates/clientauth/*.html",
    "flask_clientauth/static/clientauth/portal.css",
    "flask_clientauth/static/clientauth/portal.js",
    "migrations/env.py", "migrations/script.py.mako", "migrations/versions/*.py",
    "tests/conftest.py", "tests/test_*.py", "tests/specs/*",
    "docs/conf.py", "docs/index.rst",
], "the sdist")
versions = sorted(n for n in in_wheel if fnmatch(n, "flask_clientauth/migrations/versions/*.py"))
print(f"wheel: {len(in_wheel)} files, migrations: {', '.join(v.rsplit('/', 1)[1] for v in versions)}")
print(f"sdist: {len(in_sdist)} files")
PY

step "install the wheel into a fresh virtualenv"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" 2>&1 \
    | grep -v "^WARNING: Location .* is ignored" || true
"$work/venv/bin/python" -m pip check

step "smoke test (outside the source tree)"
mkdir "$work/app"
cd "$work/app"
cat >smoke_app.py <<'PY'
from flask import Flask

from flask_clientauth import ClientAuth, current_client

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Smoke", "version": "1"},
    "components": {
        "securitySchemes": {
            "clientId": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"},
            "clientSecret": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"},
        }
    },
    "security": [{"clientId": [], "clientSecret": []}],
    "paths": {"/hello": {"get": {"responses": {"200": {"description": "ok"}}}}},
}

app = Flask(__name__, instance_path=__import__("os").path.abspath("instance"))
app.config.update(CLIENTAUTH_SPEC=SPEC, CLIENTAUTH_BCRYPT_ROUNDS=4)
auth = ClientAuth(app)


@app.get("/hello")
def hello():
    return {"hello": current_client.name}
PY
venv=$work/venv/bin
"$venv/python" -W error -c '
import os, sys
import flask_clientauth
from flask_clientauth.migrate import MIGRATIONS_DIR, VERSIONS_DIR
assert flask_clientauth.__file__.startswith(sys.prefix), flask_clientauth.__file__
assert os.path.isfile(os.path.join(os.path.dirname(flask_clientauth.__file__), "py.typed"))
assert any(n.endswith(".py") for n in os.listdir(VERSIONS_DIR)), VERSIONS_DIR
print("import ok:", flask_clientauth.__version__, "from", os.path.dirname(flask_clientauth.__file__))
'
"$venv/flask" --app smoke_app clients --help >help.txt
grep -q "init-db" help.txt && grep -q "reset-secret" help.txt
echo "flask --app smoke_app clients --help: ok"
mkdir "$work/empty"
# registered by init_app only (no flask.commands entry point): the app-less document check
(cd "$work/empty" && "$venv/python" -m flask_clientauth --help >/dev/null)
echo "python -m flask_clientauth --help (no app): ok"
"$venv/flask" --app smoke_app clients init-db
"$venv/flask" --app smoke_app clients create "Smoke test" --json >client.json
"$venv/python" -W error - <<'PY'
import json

from smoke_app import app

with open("client.json") as f:
    client = json.load(f)
http = app.test_client()
ok = http.get("/hello", headers={"X-IBM-Client-Id": client["client_id"], "X-IBM-Client-Secret": client["client_secret"]})
assert ok.status_code == 200 and ok.json == {"hello": "Smoke test"}, (ok.status_code, ok.data)
refused = http.get("/hello", headers={"X-IBM-Client-Id": client["client_id"], "X-IBM-Client-Secret": "wrong"})
assert refused.status_code == 401 and refused.json["moreInformation"] == "Client secret invalid", refused.data
print("request with the new client: 200; wrong secret: 401")
PY

# The portal's templates and static files come from the installed package (the portal extra: Flask-WTF).
"$venv/python" -m pip install --quiet --disable-pip-version-check "flask-wtf>=1.2" 2>&1 \
    | grep -v "^WARNING: Location .* is ignored" || true
"$venv/python" -W error - <<'PY'
from smoke_app import app, auth


def login_required(view):
    return view


app.secret_key = "smoke"
app.register_blueprint(auth.portal(login_required, actor=lambda: "smoke"), url_prefix="/admin/keys")
http = app.test_client()
page = http.get("/admin/keys/")
assert page.status_code == 200 and "Smoke test" in page.get_data(as_text=True), page.status_code
for name in ("portal.css", "portal.js"):
    static = http.get(f"/admin/keys/static/{name}")
    assert static.status_code == 200 and static.data, name
    static.close()
print("portal from the installed wheel: pages and static files served")
PY

if [ -n "${KEEP_DIST:-}" ]; then
    mkdir -p "$root/$KEEP_DIST"
    cp "$sdist" "$wheel" "$root/$KEEP_DIST/"
    echo "copied to $KEEP_DIST/"
fi
step "packaging smoke test passed"
