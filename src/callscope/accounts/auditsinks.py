"""Where the copy of the audit trail goes: a log file and/or syslog on a separate host.

Imported by the settings (no Django imports here). Each committed audit entry is written as
one JSON line to the ``callscope.audit_trail`` logger (see `callscope.accounts.signals`);
the handlers built here send those lines to ``CALLSCOPE_AUDIT_LOG_FILE`` (appended, reopened
after log rotation) and ``CALLSCOPE_AUDIT_SYSLOG`` (RFC 3164 over UDP or TCP, or a local
socket), so that a copy outside the database survives an administrator who edits or
truncates the database.
"""

from __future__ import annotations

import logging
import logging.handlers
import socket
from typing import Any
from urllib.parse import urlsplit

LOGGER_NAME = "callscope.audit_trail"
SYSLOG_TAG = "callscope-audit: "


def parse_syslog_address(raw: str) -> str:
    """Validate ``udp://host:port``, ``tcp://host:port`` or a local socket path."""
    value = raw.strip()
    if value.startswith("/"):
        return value
    parts = urlsplit(value)
    if parts.scheme not in {"udp", "tcp"} or not parts.hostname:
        raise ValueError("expected udp://host:port, tcp://host:port or /dev/log")
    _ = parts.port  # raises ValueError on a malformed port
    return value


class AuditSyslogHandler(logging.handlers.SysLogHandler):
    """SysLogHandler for audit lines: facility authpriv, LF framing on TCP (RFC 6587 3.4.2)."""

    def __init__(self, address: str) -> None:
        if address.startswith("/"):
            super().__init__(address=address, facility="authpriv")
            return
        parts = urlsplit(address)
        socktype = socket.SOCK_STREAM if parts.scheme == "tcp" else socket.SOCK_DGRAM
        super().__init__(
            address=(parts.hostname or "", parts.port or 514),
            facility="authpriv",
            socktype=socktype,
        )
        if socktype == socket.SOCK_STREAM:
            self.append_nul = False

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return line + "\n" if self.socktype == socket.SOCK_STREAM else line


def audit_logging(*, log_file: str, syslog: str) -> dict[str, Any]:
    """Handlers and the logger entry to merge into Django's LOGGING dict."""
    handlers: dict[str, dict[str, Any]] = {}
    if log_file:
        handlers["audit_file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": log_file,
            "encoding": "utf-8",
            "formatter": "audit_line",
        }
    if syslog:
        handlers["audit_syslog"] = {
            "()": AuditSyslogHandler,
            "address": syslog,
            "formatter": "audit_syslog",
        }
    return {
        "formatters": {
            "audit_line": {"format": "%(message)s"},
            "audit_syslog": {"format": SYSLOG_TAG + "%(message)s"},
        },
        "handlers": handlers,
        "logger": {"level": "INFO", "handlers": sorted(handlers), "propagate": False},
    }


def merge_into(logging_dict: dict[str, Any], sinks: dict[str, Any]) -> dict[str, Any]:
    """Add the audit sinks to a LOGGING dict built by `callscope.logs.logging_config`."""
    logging_dict.setdefault("formatters", {}).update(sinks["formatters"])
    logging_dict.setdefault("handlers", {}).update(sinks["handlers"])
    logging_dict.setdefault("loggers", {})[LOGGER_NAME] = sinks["logger"]
    return logging_dict
