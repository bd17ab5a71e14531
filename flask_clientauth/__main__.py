"""``python -m flask_clientauth check [SPEC_PATH]``: the document check, where ``flask clients`` is not.

``flask clients`` is registered by ``init_app``, so ``flask`` finds it only in an app that
started. An app whose ``init_app`` refuses its document never does: this command reaches
``check`` without loading the app first, then loads it (``--app`` or ``FLASK_APP``, as ``flask``
does) and reports everything the document and the app's routes get wrong, or checks SPEC_PATH.
"""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from .cli import check


class _Main(FlaskGroup):
    """``flask``'s options (``--app``, ``--env-file``, ``.flaskenv``), with ``check`` alone as a command."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return click.Group.get_command(self, ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return click.Group.list_commands(self, ctx)


main = _Main(
    name="python -m flask_clientauth",
    help="Flask-ClientAuth's document check, for apps that do not start (`flask clients` needs one that does).",
    add_default_commands=False,
    add_version_option=False,
)
main.add_command(check)

if __name__ == "__main__":
    main()
