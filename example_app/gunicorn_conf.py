"""Gunicorn settings for the example: two workers and an access log without client secrets.

    gunicorn -c example_app/gunicorn_conf.py 'example_app:create_app()'

Command-line options (``-b``, ``-w``, ...) override these; configure the app itself with
the environment variables ``create_app`` reads (``EXAMPLE_SPEC``, ``CLIENTAUTH_*``).
"""

import glob
import os
from typing import Any

bind = "127.0.0.1:5000"
workers = 2
accesslog = "-"
# Gunicorn's default format plus the worker's pid. The request line (%(r)s) keeps its
# query string, with secret values replaced by [REDACTED] by the logger class below.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(p)s'
logger_class = "example_app.logs.GunicornLogger"
# Gunicorn 24+ opens a control socket in $HOME by default; several servers (tests) would share it.
control_socket_disable = True


# Prometheus metrics (CLIENTAUTH_METRICS) across the workers: prometheus_client's multiprocess mode,
# switched on by PROMETHEUS_MULTIPROC_DIR, set before gunicorn starts (an empty directory).
def on_starting(server: Any) -> None:
    """Start from zero: values left by a previous run would be added to this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exits takes its live gauges with it (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        try:
            from prometheus_client import multiprocess
        except ImportError:  # no metrics extra: the app wrote nothing there
            return
        multiprocess.mark_process_dead(worker.pid)
