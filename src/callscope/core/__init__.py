"""Shared value types every layer speaks: `Timestamp` (int nanoseconds since the Unix epoch,
UTC), `Endpoint` (an IP address and port), `Datagram` (one transport payload with its
capture time and endpoints) and `Anomaly` (bad input recorded as data). `core` imports
nothing else from callscope, reads no clock and touches no socket.
"""

from callscope.core.values import (
    Anomaly,
    CallscopeError,
    Datagram,
    Endpoint,
    Timestamp,
    Transport,
    format_utc,
)

__all__ = [
    "Anomaly",
    "CallscopeError",
    "Datagram",
    "Endpoint",
    "Timestamp",
    "Transport",
    "format_utc",
]
