"""Sphinx configuration of the Flask-ClientAuth documentation (``make docs``)."""

from __future__ import annotations

import importlib.util
import os
import sys

import flask_clientauth

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "Flask-ClientAuth"
author = "Flask-ClientAuth contributors"
copyright = "the Flask-ClientAuth contributors"
release = flask_clientauth.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx_click",
    "myst_parser",
    "clientauth_docs",  # _ext/clientauth_docs.py: fails the build when a key, a reason or a public name is undocumented
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path: list[str] = []

# No intersphinx: the docs build must work without network access (CI builds them with -W).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

pygments_style = "friendly"
html_title = f"Flask-ClientAuth {release}"
# The docs extra installs furo; without it, Sphinx's built-in theme.
html_theme = "furo" if importlib.util.find_spec("furo") is not None else "alabaster"
