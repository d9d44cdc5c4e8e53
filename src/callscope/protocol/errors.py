"""The protocol layer's errors: one base, one subclass per wire format, fixed messages."""

from callscope.core import CallscopeError


class ProtocolParseError(CallscopeError):
    """Bytes that do not form a valid message of the expected wire format."""

    #: stable machine name used as the `Anomaly.kind` when the tracker records it
    kind = "protocol.parse"


class SipParseError(ProtocolParseError):
    kind = "sip.parse"


class SdpParseError(ProtocolParseError):
    kind = "sdp.parse"


class RtpParseError(ProtocolParseError):
    kind = "rtp.parse"


class RtcpParseError(ProtocolParseError):
    kind = "rtcp.parse"


class HepParseError(ProtocolParseError):
    kind = "hep.parse"


class SiprecParseError(ProtocolParseError):
    kind = "siprec.parse"
