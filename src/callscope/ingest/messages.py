"""Compile the console's gettext catalogues (.po -> .mo) without GNU gettext installed.

The compiled .mo files are build output and are not kept in the repository; they are
(re)made here whenever a .po is newer than its .mo.
"""

from __future__ import annotations

import os
from pathlib import Path

import polib

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def compile_messages(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Compile every stale catalogue under ``locale_dir``; returns the .mo files written."""
    written = []
    for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        catalogue = polib.pofile(str(po_path))
        # a name of its own: several processes may start at once on a fresh checkout
        tmp = mo_path.with_suffix(f".mo.{os.getpid()}.tmp")
        catalogue.save_as_mofile(str(tmp))
        tmp.replace(mo_path)
        written.append(mo_path)
    return written
