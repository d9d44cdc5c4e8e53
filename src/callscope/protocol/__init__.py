"""Sans-IO wire formats and their state: SIP messages, headers, framing and multipart
bodies, dialogs and transactions, SDP, RTP and RTCP, RFC 4733 telephone events, RTP stream
statistics, HEPv3, SIPREC metadata and the SIP UAS message builders. Nothing here reads a
clock, opens a socket or imports Django: time is passed in from the packet, and bad input
raises only this layer's `ProtocolParseError` subclasses.
"""
