"""Property: any interleaving, duplication or loss of the SIP messages of real calls never
crashes the tracker and never makes more than one call of one dialog."""

from __future__ import annotations

from collections import Counter
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscope.assembly.events import CallEnded, CallStarted
from callscope.assembly.tracker import CallTracker
from callscope.capture.source import read_file
from callscope.core import Datagram, Endpoint, Timestamp
from callscope.protocol.sip import looks_like_sip
from tests.conftest import TESTDATA

CALLS = (
    "pcap/DTMFsipinfo.pcap",  # three INVITEs of one Call-ID, CANCELs crossing 200 OKs
    "pcap/Asterisk_ZFONE_XLITE.pcap",  # 401 retry, re-INVITE from the callee
    "pcap/b2bua-asterisk.pcapng",  # two legs, re-INVITEs on both
    "pcap/sip-488-codec-reject.pcapng",  # 401 then 488
    "generated/baresip_call_pcmu_8s.pcap",
)

PROXY = Endpoint("192.0.2.99", 5060)


@cache
def sip_of(name: str) -> tuple[Datagram, ...]:
    return tuple(d for d in read_file(TESTDATA / name) if looks_like_sip(d.payload))


@st.composite
def mangled(draw: st.DrawFn) -> tuple[list[Datagram], bool]:
    messages = sip_of(draw(st.sampled_from(CALLS)))
    picks = draw(
        st.lists(st.integers(0, len(messages) - 1), min_size=1, max_size=3 * len(messages))
    )
    restamp = draw(st.booleans())
    hops = draw(st.lists(st.booleans(), min_size=len(picks), max_size=len(picks)))
    out = []
    seen = set()
    for i, (pick, hop) in enumerate(zip(picks, hops, strict=True)):
        d = messages[pick]
        at = Timestamp(messages[0].at + i * 1_000_000) if restamp else d.at
        # a second copy may come from a proxy's address (the next hop on a mirror port)
        src = PROXY if hop and pick in seen else d.src
        seen.add(pick)
        out.append(Datagram(at, src, d.dst, d.transport, d.payload, d.source))
    return out, restamp


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled())
def test_mangled_sip_never_crashes_and_never_splits_a_dialog(
    case: tuple[list[Datagram], bool],
) -> None:
    datagrams, _ = case
    tracker = CallTracker()
    events = []
    for d in datagrams:
        events.extend(tracker.receive(d))
    events.extend(tracker.finish())
    started = [e for e in events if isinstance(e, CallStarted)]
    per_dialog = Counter(e.call_id for e in started)
    assert all(n == 1 for n in per_dialog.values()), per_dialog
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert sorted(e.call_key for e in ended) == sorted(e.call_key for e in started)
    for e in ended:
        e.record.to_contract()  # every record renders


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.sampled_from(["SIP/2.0 ", "INVITE ", "\x80"]))
def test_arbitrary_payloads_never_raise(tail: bytes, head: str) -> None:
    d = sip_of("generated/baresip_call_pcmu_8s.pcap")[0]
    tracker = CallTracker()
    tracker.receive(d)
    junk = Datagram(d.at, d.src, d.dst, d.transport, head.encode("latin-1") + tail)
    tracker.receive(junk)
    tracker.finish()
