"""Typed configuration from environment variables (STYLE habit 9).

Every setting callscope reads is declared here once, with its type, default and a line of
documentation; `docs/configuration.md` is checked against this registry by a test. Secrets
may come from ``NAME_FILE`` (a path whose content is the value) instead of ``NAME``.

A malformed value, or a ``CALLSCOPE_*`` variable that is not declared, stops start-up with
a `ConfigError` naming the variable: a typo in a deployment must never be silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from callscope.core import CallscopeError

PREFIX = "CALLSCOPE_"

T = TypeVar("T")


class ConfigError(CallscopeError):
    """A configuration variable is unknown or its value is malformed."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, parser, default and documentation."""

    name: str
    parse: Callable[[str], T]
    default: T
    doc: str
    secret: bool = False

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        env = os.environ if environ is None else environ
        raw = env.get(self.name)
        if self.secret and f"{self.name}_FILE" in env:
            if raw is not None:
                raise ConfigError(self.name, f"set either {self.name} or {self.name}_FILE")
            path = Path(env[f"{self.name}_FILE"])
            try:
                raw = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{self.name}_FILE", f"cannot read {path}: {exc}") from exc
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(self.name, f"malformed value {raw!r}: {exc}") from exc


REGISTRY: dict[str, Setting[Any]] = {}


def declare(
    name: str, parse: Callable[[str], T], default: T, doc: str, *, secret: bool = False
) -> Setting[T]:
    """Declare a setting once; declaring the same name twice is a programming error."""
    if not name.startswith(PREFIX):
        raise ValueError(f"setting {name} must start with {PREFIX}")
    if name in REGISTRY:
        raise ValueError(f"setting {name} declared twice")
    setting = Setting(name, parse, default, doc, secret)
    REGISTRY[name] = setting
    return setting


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of true/false/1/0/yes/no/on/off")


def parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in parse_list(raw))


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def parse_hex_key(raw: str) -> bytes:
    key = bytes.fromhex(raw.strip())
    if len(key) != 32:
        raise ValueError("expected 64 hexadecimal digits (a 256-bit key)")
    return key


def check_unknown(environ: Mapping[str, str] | None = None) -> None:
    """Refuse ``CALLSCOPE_*`` variables that no setting declares (typos, removed settings)."""
    env = os.environ if environ is None else environ
    known = set(REGISTRY)
    known |= {f"{name}_FILE" for name, setting in REGISTRY.items() if setting.secret}
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known:
            raise ConfigError(name, "unknown setting (see docs/configuration.md)")
