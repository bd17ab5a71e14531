"""The docs and the code name the same things: every config key, error code and CLI command (with its
options) the code has is in README.md and docs/, and nothing the docs name is missing from the code.
Also how to run the whole suite, and what a run on SQLite alone says it skipped."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from flask_clientauth import admin_api, errors, service
from flask_clientauth.cli import clients
from flask_clientauth.settings import DEFAULTS, READERS, Settings, field_name

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted((REPO / "docs").glob("*.*"))
    if path.suffix in (".rst", ".md")
}
ALL_DOCS = {"README.md": README, **DOCS}

REASONS = {v.code: v for v in vars(errors).values() if isinstance(v, errors.Reason)}
#: Variables the test suite reads, not the extension (README's "Running the tests").
TEST_VARIABLES = ("CLIENTAUTH_TEST_POSTGRES_URL", "CLIENTAUTH_TEST_MARIADB_URL", "CLIENTAUTH_TEST_REDIS_URL")


def section(text: str, title: str) -> str:
    """A README section (``## title``) up to the next one of its level."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


# -- configuration keys ---------------------------------------------------------------------------
def test_the_readme_config_table_lists_exactly_the_keys() -> None:
    rows = re.findall(r"^\| `(CLIENTAUTH_[A-Z0-9_]+)` \|", section(README, "Configuration"), re.M)
    assert len(rows) == len(set(rows)), "a key has two rows"
    assert set(rows) == set(DEFAULTS), (set(DEFAULTS) - set(rows), set(rows) - set(DEFAULTS))


def test_settings_has_a_typed_field_for_exactly_the_documented_keys() -> None:
    """The docs' tables, DEFAULTS and the Settings object the extension reads are one list."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {field_name(key) for key in DEFAULTS}
    assert set(READERS) == set(DEFAULTS)
    settings = Settings.from_config({"CLIENTAUTH_SPEC": "openapi.yaml"})  # every default passes its reader
    assert settings.cache_ttl == DEFAULTS["CLIENTAUTH_CACHE_TTL"] and settings.base_path == ""


def test_config_rst_has_an_entry_for_exactly_the_keys() -> None:
    entries = re.findall(r"^\.\. confval:: (\S+)\s*$", DOCS["config.rst"], re.M)
    assert set(entries) == set(DEFAULTS), (set(DEFAULTS) - set(entries), set(entries) - set(DEFAULTS))


def test_every_key_the_docs_name_exists() -> None:
    """Also in prose and examples; ``CLIENTAUTH_RATELIMIT_*`` stands for keys that exist."""
    unknown = set()
    for name, text in ALL_DOCS.items():
        text = re.sub(r"unknown configuration key CLIENTAUTH_\w+", "", text)  # the misspelling example
        for token in re.findall(r"\bCLIENTAUTH_[A-Z0-9_]*[A-Z0-9](?:_\*)?|\bCLIENTAUTH_\*", text):
            if token.endswith("*"):
                prefix = token[:-1]
                if not any(key.startswith(prefix) for key in DEFAULTS):
                    unknown.add(f"{name}: {token}")
            elif token not in DEFAULTS and token not in TEST_VARIABLES:
                unknown.add(f"{name}: {token}")
    assert not unknown, sorted(unknown)


# -- error codes ----------------------------------------------------------------------------------
def test_the_readme_errors_table_lists_exactly_the_codes() -> None:
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \| (.*?) \|", section(README, "Errors"), re.M)
    documented = {code: (int(status), text) for status, code, text in rows}
    assert set(documented) == set(REASONS), (set(REASONS) - set(documented), set(documented) - set(REASONS))
    for code, reason in REASONS.items():
        status, text = documented[code]
        assert status == reason.status, code
        assert reason.text in text, code
    assert errors.GATEWAY_401_TEXT in README


def test_errors_rst_lists_exactly_the_codes() -> None:
    rows = re.findall(r"^\s+\* - (\d{3})\n\s+- ``([a-z_]+)``\n\s+- (.+)$", DOCS["errors.rst"], re.M)
    documented = {code: (int(status), text) for status, code, text in rows}
    assert set(documented) == set(REASONS), (set(REASONS) - set(documented), set(documented) - set(REASONS))
    for code, reason in REASONS.items():
        assert documented[code][0] == reason.status, code
        assert reason.text in documented[code][1], code


def test_every_error_code_the_docs_name_exists() -> None:
    """A code in backticks next to a status, anywhere: ``403 ``scheme_not_supported```` or `(`code`)`."""
    named = set()
    for text in ALL_DOCS.values():
        named.update(re.findall(r"\b[45]\d\d `{1,2}([a-z]+_[a-z_]+)`{1,2}", text))
    # the service layer's refusals (admin API, portal) and the admin API's own are codes too
    known = set(REASONS) | set(service.CODES) | set(admin_api.CODES)
    assert named and named <= known, named - known


# -- CLI commands and options ---------------------------------------------------------------------
def options(command: click.Command) -> set[str]:
    return {name for p in command.params if isinstance(p, click.Option) for name in p.opts}


MENTION = re.compile(r"flask (?:--app \S+ )?clients ([a-z][a-z-]*)([^`|#\n]*)")


def leaf_commands(group: click.Group = clients, prefix: str = "") -> dict[str, click.Command]:
    """Every command that runs something, by its name under ``flask clients`` (``credentials add``)."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def resolve(name: str, rest: str) -> tuple[str, click.Command | None, str]:
    """``(full name, command, what follows)`` for ``flask clients NAME REST``, into nested groups."""
    command = clients.commands.get(name)
    while isinstance(command, click.Group):
        sub = re.match(r" ([a-z][a-z-]*)", rest)
        if sub is None:
            break
        name, rest, command = f"{name} {sub.group(1)}", rest[sub.end() :], command.commands.get(sub.group(1))
    return name, command, rest


def test_the_readme_cli_table_lists_every_command_with_its_options() -> None:
    rows = re.findall(r"^\| `flask clients ([a-z-]+)([^`]*)` \|", section(README, "CLI"), re.M)
    documented: dict[str, set[str]] = {}
    for first, after in rows:  # a command may have a row for each of its forms (``audit --prune-before``)
        name, _command, rest = resolve(first, after)
        documented.setdefault(name, set()).update(re.findall(r"--[a-z][a-z-]*", rest))
    commands = leaf_commands()
    assert set(documented) == set(commands), (set(commands) - set(documented), set(documented) - set(commands))
    for name, command in commands.items():
        assert documented[name] == options(command), name


def test_every_command_and_option_the_docs_name_exists() -> None:
    problems = []
    for doc, text in ALL_DOCS.items():
        for match in MENTION.finditer(text):
            name, command, rest = resolve(match.group(1), match.group(2))
            if command is None:
                problems.append(f"{doc}: flask clients {name}")
                continue
            problems += [
                f"{doc}: flask clients {name} {o}"
                for o in re.findall(r"--[a-z][a-z-]*", rest)
                if o not in options(command)
            ]
    assert not problems, problems


def test_the_cli_reference_is_generated_from_the_click_group() -> None:
    """docs/cli.rst's reference comes from the group itself (sphinx-click), so it lists every command."""
    assert ".. click:: flask_clientauth.cli:clients" in DOCS["cli.rst"]
    assert ":nested: full" in DOCS["cli.rst"]


# -- running the whole suite ------------------------------------------------------------------------
def test_the_readme_exports_what_ci_exports() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    ci_exports = dict(re.findall(r'^export (CLIENTAUTH_TEST_\w+)="\$\{\1:-([^}]+)\}"$', ci, re.M))
    assert set(ci_exports) == set(TEST_VARIABLES)
    running = section(README, "Running the tests")
    readme_exports = dict(re.findall(r"^export (CLIENTAUTH_TEST_\w+)=(\S+)$", running, re.M))
    assert readme_exports == ci_exports
    assert "make test" in running


@pytest.mark.slow
def test_a_run_without_the_server_urls_says_what_it_skipped_and_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in TEST_VARIABLES and not k.startswith("PYTEST_")}
    selection = [
        "tests/test_store.py::test_client_without_secret",
        "tests/test_throttle.py::test_counters_are_shared_across_processes_through_redis",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *selection],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "tests skipped: database / Redis URLs not set" in out
    assert "PostgreSQL: 1 test skipped (CLIENTAUTH_TEST_POSTGRES_URL is not set)" in out
    assert "MariaDB: 1 test skipped (CLIENTAUTH_TEST_MARIADB_URL is not set)" in out
    assert "Redis: 1 test skipped (CLIENTAUTH_TEST_REDIS_URL is not set)" in out
    assert "'Running the tests'" in out


@pytest.mark.parametrize("opening", ["make run", "make test"])
def test_the_readme_opens_with_its_two_commands(opening: str) -> None:
    assert README.startswith("# Flask-ClientAuth\n")
    assert opening in README.split("\n## ", 1)[0]


def test_the_package_modules_import_each_other_without_a_cycle() -> None:
    """Every import between the package's modules, module-level or inside a function (but not under
    ``TYPE_CHECKING``), points one way: a new maintainer can read them bottom-up."""
    import ast

    package = Path(__file__).resolve().parent.parent / "flask_clientauth"
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        graph[path.stem] = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and id(node) not in typing_only
        }
    graph.pop("__init__")

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join((*trail, module))
        for imported in graph.get(module, ()):
            visit(imported, (*trail, module))

    for module in graph:
        visit(module, ())
