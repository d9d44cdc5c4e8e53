"""Turns SIP and media into calls: the SDP endpoint map, stream-to-call pairing, SSRC
continuity, hold, transfer linking, results and timings, emitted as `CallEvent`s and final
call records. Sans-IO: the tracker is fed datagrams with their capture time and is told
when time has passed (`expire(now=...)`); it never reads a clock.
"""
