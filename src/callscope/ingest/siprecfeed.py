"""The SIPREC recording server as a feed of the live recorder (`callscope capture --siprec`).

Wires a `SiprecSource` to the daemon: RTP ports from ``CALLSCOPE_SIPREC_RTP_PORTS``, TLS
on the next port when ``CALLSCOPE_SIPREC_TLS_CERT``/``_KEY`` are set, the codecs the audio
layer decodes offered in the answers. Its counters become the feed's health samples
(packets and bytes of SIP and RTP; SIP that could not be sent counts as application
drops). `use_siprec_tracker` gives the recorder a `SiprecTracker`, so that the sessions
become call records of the real parties (and a mirror port or HEP feed beside it still
goes to the call tracker).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from callscope.assembly.siprec import SiprecTracker
from callscope.capture.siprec import SiprecSource
from callscope.capture.siprec_sockets import TlsFiles
from callscope.core import Endpoint
from callscope.ingest.daemon import Feed, SourceHealth
from callscope.ingest.pipeline import Recorder
from callscope.protocol.siprec_session import SrsConfig

__all__ = ["siprec_feed", "siprec_summary", "use_siprec_tracker"]


def tls_files() -> TlsFiles | None:
    """The TLS certificate and key from the settings; ValueError if only one is set."""
    cert, key = settings.CALLSCOPE_SIPREC_TLS_CERT, settings.CALLSCOPE_SIPREC_TLS_KEY
    if not cert and not key:
        return None
    if not cert or not key:
        raise ValueError("set both CALLSCOPE_SIPREC_TLS_CERT and CALLSCOPE_SIPREC_TLS_KEY")
    return TlsFiles(Path(cert), Path(key))


def siprec_feed(address: Endpoint, *, name: str | None = None) -> tuple[Feed, SiprecSource]:
    """A recording server on ``address`` (UDP and TCP, TLS on the next port) as a daemon
    `Feed`; raises OSError when a port cannot be bound or the certificate not read."""
    # the codecs (FFmpeg, numpy) load with a recording server only: a recorder on a mirror
    # port does not carry them (~20 MB resident; its encoder workers load them)
    from callscope.audio.codecs import DECODERS  # noqa: PLC0415

    config = SrsConfig(codecs=frozenset(DECODERS))
    source = SiprecSource(
        address, rtp_ports=settings.CALLSCOPE_SIPREC_RTP_PORTS, tls=tls_files(), config=config
    )
    return Feed(source, name or f"siprec:{source.address}", "siprec", _health(source)), source


def _health(source: SiprecSource) -> Callable[[], SourceHealth]:
    def health() -> SourceHealth:
        counters = source.counters
        return SourceHealth(
            packets=counters.packets, bytes=counters.bytes, app_drops=counters.send_failures
        )

    return health


def use_siprec_tracker(recorder: Recorder) -> None:
    """Give ``recorder`` a `SiprecTracker` (same configuration and media sink) before its
    first datagram: SIPREC sessions become calls of the parties the metadata names."""
    tracker = recorder.tracker
    recorder.tracker = SiprecTracker(tracker.config, media_sink=recorder.sink)


def siprec_summary(source: SiprecSource) -> str:
    """One line for the operator at shutdown: what the recording server did."""
    counters = source.counters
    tls = f", TLS on {source.tls_address}" if source.tls_address is not None else ""
    return (
        f"SIPREC {source.address}{tls}: {counters.sessions_started} recording sessions "
        f"({counters.idle_ended} ended idle), {counters.sip_received} SIP messages in, "
        f"{counters.sip_sent} out ({counters.send_failures} not sent), {counters.rtp} RTP "
        f"packets, {counters.tcp_accepted} TCP/TLS connections, refused "
        f"{dict(source.server.counters)}"
    )
