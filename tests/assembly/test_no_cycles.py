"""A forgotten call leaves no reference cycle: the recorder frees it by reference counting.

The live recorder runs the cyclic garbage collector rarely (`CaptureDaemon.run`): that is
cheap in memory only while ended calls do not wait for it. Every capture of the test data
(B2BUA legs joined into one group, transfers, media streams) goes through a tracker until
every call is forgotten; the collector, saving what it finds, must find no call state.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from callscope.assembly.call import Call
from callscope.assembly.tracker import CallTracker
from callscope.capture.source import read_file
from callscope.protocol.dialog import InviteDialog
from tests.conftest import TESTDATA

CAPTURES = sorted(
    p for d in ("pcap", "generated") for p in (TESTDATA / d).glob("*") if p.suffix in
    {".pcap", ".pcapng", ".cap", ""} and p.is_file() and p.name != "README"
)  # fmt: skip


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_forgotten_calls_leave_no_cycles(path: Path) -> None:
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        tracker = CallTracker()
        last = 0
        for dgram in read_file(path):
            tracker.receive(dgram)
            last = dgram.at
        tracker.expire(last + 10**13)  # ends and forgets every call
        assert not tracker.open_calls
        del tracker
        gc.collect()
        found = [o for o in gc.garbage if isinstance(o, Call | InviteDialog)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == []
