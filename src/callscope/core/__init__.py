"""Shared value types every layer speaks: `Timestamp` (int nanoseconds since the Unix epoch,
UTC), `Endpoint` (an IP address and port), `Datagram` (one transport payload with its
capture time and endpoints) and `Anomaly` (bad input recorded as data). `core` imports
nothing else from callscope, reads no clock and touches no socket.
`MediaRoutes` lets a capture source hand RTP of flows a consumer already knows straight to
their receivers.
"""

from callscope.core.routes import MediaRoutes, flow_key
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
    "MediaRoutes",
    "Timestamp",
    "Transport",
    "flow_key",
    "format_utc",
]
