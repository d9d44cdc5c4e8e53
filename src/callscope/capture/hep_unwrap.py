"""HEP in a capture file: datagrams that carry HEP become the SIP datagrams they encapsulate.

PBXs and proxies mirror each SIP message they handle as one HEP datagram, usually to UDP
port 9060 (Kamailio siptrace, OpenSIPS, Asterisk res_hep, heplify). A capture of such a
feed (or of a mirror port that also sees it) holds HEP datagrams among ordinary ones.
`unwrap_hep` passes every other datagram through unchanged and hands each HEP datagram to
the collector's `HepDecoder` (the same decoding, counting and de-duplication as the live
HEP listener), which yields the inner SIP message as a `Datagram` with the inner addresses,
the agent's timestamp and ``source="hep"``; everything else HEP carries (RTCP reports as
JSON, logs, bad packets) is counted in the decoder's `HepCounters` and dropped.

A capture that holds both the mirrored SIP and its HEP copies yields each message twice;
the call tracker recognises the second copy as the same message (one call, times from the
first copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from callscope.capture.hepdecode import HepDecoder
from callscope.core import Datagram
from callscope.protocol.hep import HEP3_MAGIC

__all__ = ["HEP_PORT", "unwrap_hep"]

#: the port HEP agents send to by convention (HEP3 spec, Homer defaults)
HEP_PORT = 9060


def _is_hep(dgram: Datagram) -> bool:
    """HEPv3 by its magic on any port; HEPv1/v2 (no magic) only on the HEP port."""
    payload = dgram.payload
    if payload[:4] == HEP3_MAGIC:
        return True
    return dgram.dst.port == HEP_PORT and payload[:1] in (b"\x01", b"\x02")


def unwrap_hep(
    datagrams: Iterable[Datagram], decoder: HepDecoder | None = None
) -> Iterator[Datagram]:
    """Yield ``datagrams`` with every HEP datagram replaced by its inner SIP message (or
    dropped and counted in ``decoder.counters`` when it carries anything else)."""
    decoder = decoder if decoder is not None else HepDecoder()
    decode = decoder.decode
    for dgram in datagrams:
        if not _is_hep(dgram):
            yield dgram
            continue
        inner = decode(dgram.payload, dgram.at)
        if inner is not None:
            yield inner
