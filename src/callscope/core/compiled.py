"""Compiled twins of hot Python code, and the switch that turns them off.

A few per-packet paths (RTP statistics, a routed flow's usual packet, the capture file
scanner) have a Cython twin that `pip install` builds (see ``setup.py``). The Python code
stays the reference: the twins compute the same figures (tests hold them to it), and the
Python code runs where no twin was built or where ``CALLSCOPE_PURE_PYTHON=1`` is set (to
compare the two, or to rule the compiled code out).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["compiled_module", "pure_python"]


def pure_python() -> bool:
    """True if ``CALLSCOPE_PURE_PYTHON`` asks for the Python code only."""
    # the same spellings as callscope.config.parse_bool (the setting is declared there)
    return os.environ.get("CALLSCOPE_PURE_PYTHON", "").strip().lower() in {"1", "true", "yes", "on"}


def compiled_module(name: str) -> ModuleType | None:
    """The compiled module ``name``, or None if it is not built or turned off."""
    if pure_python():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
