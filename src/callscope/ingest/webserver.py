"""Gunicorn embedded as the console's WSGI server (threaded workers, static via WhiteNoise)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from gunicorn.app.base import BaseApplication

#: gunicorn's access log line: the path without the query string (%(U)s, not %(r)s), which
#: would write the phone numbers of searches into the log; %(M)s: milliseconds in the server
ACCESS_LOG_FORMAT = '%(t)s %(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)s'

#: where workers keep their heartbeat files when it exists (a tmpfs on Linux)
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 - gunicorn's own advice for worker_tmp_dir


class ConsoleServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, *, bind: str) -> None:
        self.options = {
            "bind": bind,
            "workers": settings.CALLSCOPE_WEB_WORKERS,
            "threads": settings.CALLSCOPE_WEB_THREADS,
            "worker_class": "gthread",
            "timeout": 60,
            "graceful_timeout": 10,
            "accesslog": settings.CALLSCOPE_ACCESS_LOG or None,
            "access_log_format": ACCESS_LOG_FORMAT,
            "errorlog": "-",
            "logconfig_dict": settings.LOGGING,
            "proc_name": "callscope-console",
        }
        # Each worker touches a heartbeat file twice per request; on a disk-backed /tmp that
        # is a metadata write each time (~0.4 ms here), in memory it is free.
        if SHARED_MEMORY.is_dir():
            self.options["worker_tmp_dir"] = str(SHARED_MEMORY)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25+ opens a control socket (~/.gunicorn/gunicorn.ctl) to resize or stop
        # the server at run time: one more way in, and one path every instance on the
        # machine would share. `callscope serve` is managed as a whole; no socket.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        # Imported here, after collectstatic: WhiteNoise indexes STATIC_ROOT when the
        # application is built.
        from callscope.wsgi import application  # noqa: PLC0415

        return application
