"""Keep the docs honest: the build warns (an error under ``-W``) when the code has something they lack.

- every ``CLIENTAUTH_*`` key in :data:`flask_clientauth.settings.DEFAULTS`, or read anywhere in
  the package, has a ``.. confval::`` entry in ``config.rst`` whose ``:default:`` starts with the
  real default; no entry documents a key that does not exist;
- every :class:`~flask_clientauth.errors.Reason` has its code and its text in ``errors.rst``;
- every name in ``flask_clientauth.__all__`` (and ``flask_clientauth.testing.__all__``, once that
  module exists) is documented by autodoc somewhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

_CONFVAL = re.compile(r"^\.\. confval:: (\S+)\s*$")
_OPTION = re.compile(r"^\s+:(\w+):\s*(.*)$")
_KEY = re.compile(r"\bCLIENTAUTH_[A-Z0-9_]*[A-Z0-9]\b")


def _render_default(value: Any) -> str:
    """How a default is written in ``:default:``: Python literals, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _confvals(path: Path) -> dict[str, dict[str, str]]:
    entries: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _CONFVAL.match(line)
        if match:
            current = entries.setdefault(match.group(1), {})
            continue
        option = _OPTION.match(line)
        if current is not None and option:
            current[option.group(1)] = option.group(2)
        elif line.strip() and not line.startswith(" "):
            current = None
    return entries


def _keys_in_package() -> set[str]:
    """Config keys the package reads (its sources), beyond the DEFAULTS table."""
    spec = importlib.util.find_spec("flask_clientauth")
    assert spec is not None and spec.submodule_search_locations
    keys: set[str] = set()
    for location in spec.submodule_search_locations:
        for source in Path(location).glob("*.py"):
            keys.update(_KEY.findall(source.read_text(encoding="utf-8")))
    return keys


def check_config(env: BuildEnvironment) -> None:
    from flask_clientauth.settings import DEFAULTS

    path = Path(env.doc2path("config"))
    documented = _confvals(path)
    known = set(DEFAULTS) | _keys_in_package()
    for key in sorted(known - set(documented)):
        logger.warning(
            "config key %s is not documented (add a '.. confval:: %s' entry)", key, key, location=("config", None)
        )
    for key in sorted(set(documented) - known):
        logger.warning("config.rst documents %s, which the package does not know", key, location=("config", None))
    for key, options in documented.items():
        if key not in DEFAULTS:
            continue
        expected = _render_default(DEFAULTS[key])
        written = options.get("default", "").replace("``", "")
        if not written.startswith(expected):
            logger.warning(
                "%s: documented default %r does not start with the real default %s",
                key,
                written,
                expected,
                location=("config", None),
            )
        if not options.get("type"):
            logger.warning("%s: no ':type:' given", key, location=("config", None))


def check_errors(env: BuildEnvironment) -> None:
    from flask_clientauth import errors

    path = Path(env.doc2path("errors"))
    text = path.read_text(encoding="utf-8")
    reasons = [v for v in vars(errors).values() if isinstance(v, errors.Reason)]
    for reason in reasons:
        if f"``{reason.code}``" not in text:
            logger.warning("error code %s is not in the errors table", reason.code, location=("errors", None))
        if reason.text not in text:
            logger.warning(
                "the text of %s (%r) is not in the errors table", reason.code, reason.text, location=("errors", None)
            )


def check_api(env: BuildEnvironment) -> None:
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    modules = ["flask_clientauth"]
    if importlib.util.find_spec("flask_clientauth.testing") is not None:
        modules.append("flask_clientauth.testing")
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            home = getattr(obj, "__module__", None)
            candidates = {f"{module_name}.{name}"}
            if isinstance(home, str):
                candidates.add(f"{home}.{name}")
            if not candidates & set(objects):
                logger.warning("%s.%s is public but not in the API reference (api.rst)", module_name, name)


def check_consistency(app: Sphinx, env: BuildEnvironment) -> None:
    if "config" in env.found_docs:
        check_config(env)
    if "errors" in env.found_docs:
        check_errors(env)
    if "api" in env.found_docs:
        check_api(env)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", check_consistency)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
