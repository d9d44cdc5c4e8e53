"""The hot path of one RTP flow: the usual packet accounted with the state of the one before.

Nearly every packet of a call is voice of the SSRC and payload type of the packet before
it, with no CSRC, extension, padding (first octet 0x80) or marker bit. `RtpReceiver` keeps
what such a packet needs - the statistics of that SSRC (`StreamStats`), its clock rate,
the payload type of the current run and its length, the audio sink - and accounts it in
`receive`; every other packet goes to `_general`, which a subclass implements
(`callscope.assembly.media.MediaStream`) and which sets or clears the hot state:
``_hot_ssrc`` is -1 when the next packet must take the general path.

A receiver is also callable as ``receiver(at, payload)``: `callscope.core.MediaRoutes`
holds receivers, and the compiled capture scanner (`callscope.capture._pcapscan`) runs the
usual packet of a compiled receiver (`callscope.protocol._rtpfast`) without a Python call.
The compiled class replaces this one when it is built (see `callscope.core.compiled`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from callscope.core.compiled import compiled_module
from callscope.protocol.rtp_stats import StreamStats

__all__ = ["PythonRtpReceiver", "RtpReceiver"]

# RFC 3550 5.1: M/PT, sequence number, timestamp, SSRC after the first octet
_FIXED_HEADER = struct.Struct("!xBHII").unpack_from


class RtpReceiver:
    """Base of a flow's receiver: see the module docs."""

    __slots__ = (
        "_hot_clock",
        "_hot_ssrc",
        "_hot_stats",
        "_run",
        "_run_pt",
        "_sink",
        "direction",
        "last_at",
        "owner",
    )

    owner: Any  # has ``key``: the sink's first argument
    direction: Any
    _sink: Any  # has ``write(key, direction, at, ssrc, seq, timestamp, pt, marker, data)``
    _hot_stats: StreamStats | None
    last_at: int
    _run: int
    _hot_ssrc: int
    _hot_clock: int
    _run_pt: int

    def receive(self, at: int, payload: bytes) -> None:
        """One datagram of this flow: the usual packet here, any other in `_general`."""
        if payload[0] == 0x80 and len(payload) >= 12:
            second, seq, timestamp, ssrc = _FIXED_HEADER(payload)
            if ssrc == self._hot_ssrc and second == self._run_pt:  # no marker bit
                self._hot_stats.receive(at, seq, timestamp, self._hot_clock)  # type: ignore[union-attr]
                self.last_at = at
                self._run += 1
                sink = self._sink
                if sink is not None:
                    sink.write(
                        self.owner.key, self.direction, at, ssrc, seq, timestamp, second,
                        False, payload[12:],
                    )  # fmt: skip
                return
        self._general(at, payload)

    __call__ = receive

    def _general(self, at: int, payload: bytes) -> None:
        raise NotImplementedError


#: the Python class, also where the compiled twin replaces it (tests compare the two)
PythonRtpReceiver = RtpReceiver
_compiled = compiled_module("callscope.protocol._rtpfast")
if _compiled is not None and not TYPE_CHECKING:
    RtpReceiver = _compiled.RtpReceiver
