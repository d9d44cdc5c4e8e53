"""`callscope rotatekey --old-key-file FILE`: master-key rotation.

Set CALLSCOPE_AUDIO_MASTER_KEY (or its _FILE) to the new key, then run this with the old
key: every recording's data key is unwrapped with the old key and wrapped with the new one.
The audio itself is not re-encrypted. Audited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from callscope.config import parse_hex_key
from callscope.store import audit
from callscope.store.recordings import master_key_id, rewrap_all


class Command(BaseCommand):
    help = "Re-wrap every recording's data key under the current master key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--old-key-file", type=Path, required=True, help="file holding the old key (hex)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            old = parse_hex_key(options["old_key_file"].read_text(encoding="ascii"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot use the old key: {exc}") from exc
        count = rewrap_all({master_key_id(old): old})
        audit.record("master_key_rotated", detail={"recordings": count})
        self.stdout.write(f"{count} recording keys re-wrapped under the current master key")
