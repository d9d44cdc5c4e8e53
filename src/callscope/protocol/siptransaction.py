"""SIP server transactions of a UAS (RFC 3261 17.2, with RFC 6026's Accepted state).

Theory of operation
-------------------
A server transaction remembers the last response sent for a request so that a
retransmitted request is answered again without bothering the user agent core, and (over
UDP) retransmits a final non-2xx response to an INVITE until the ACK comes (Timer G,
doubling from T1 up to T2, for at most Timer H = 64*T1). The states move through
`INVITE_TRANSITIONS` or `NON_INVITE_TRANSITIONS`; a pair missing from a table leaves the
state as it is.

* INVITE (17.2.1): PROCEEDING -> (2xx) ACCEPTED -> Timer L -> TERMINATED. A 2xx is
  retransmitted by the UAS core, not here (RFC 3261 13.3.1.4); in ACCEPTED, retransmitted
  INVITEs are absorbed (RFC 6026 7.1). PROCEEDING -> (300-699) COMPLETED -> (ACK)
  CONFIRMED -> Timer I -> TERMINATED; Timer H ends COMPLETED without an ACK.
* non-INVITE (17.2.2): TRYING -> (final) COMPLETED -> Timer J -> TERMINATED.

Nothing here reads a clock: `ServerTransactions.expire(now)` is told the time and returns
the responses due for retransmission. Times are int nanoseconds.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from typing import Final

from callscope.core import Endpoint, Transport
from callscope.protocol.sip import SipMessage

__all__ = [
    "INVITE_TRANSITIONS",
    "NON_INVITE_TRANSITIONS",
    "T1_NS",
    "T2_NS",
    "T4_NS",
    "Resend",
    "ServerTransaction",
    "ServerTransactions",
    "TxInput",
    "TxState",
    "transaction_key",
]

T1_NS: Final = 500_000_000  # RFC 3261 17.1.1.1: round-trip estimate
T2_NS: Final = 4_000_000_000  # maximum retransmit interval of non-INVITE requests and responses
T4_NS: Final = 5_000_000_000  # maximum time a message stays in the network
_MAGIC_COOKIE: Final = "z9hG4bK"  # RFC 3261 8.1.1.7

#: a transaction's identity (RFC 3261 17.2.3), see `transaction_key`
TxKey = tuple[str, ...]


class TxState(enum.Enum):
    """Server transaction states (RFC 3261 figures 7 and 8, RFC 6026 figure 5)."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TxInput(enum.Enum):
    """What happens to a server transaction."""

    PROVISIONAL = "1xx sent"
    SUCCESS = "2xx sent"
    FAILURE = "300-699 sent"
    ACK = "ACK received"
    TIMEOUT = "Timer H, I, J or L"


INVITE_TRANSITIONS: Final = {
    TxState.PROCEEDING: {
        TxInput.PROVISIONAL: TxState.PROCEEDING,
        TxInput.SUCCESS: TxState.ACCEPTED,
        TxInput.FAILURE: TxState.COMPLETED,
    },
    TxState.ACCEPTED: {TxInput.TIMEOUT: TxState.TERMINATED},  # Timer L
    TxState.COMPLETED: {TxInput.ACK: TxState.CONFIRMED, TxInput.TIMEOUT: TxState.TERMINATED},
    TxState.CONFIRMED: {TxInput.TIMEOUT: TxState.TERMINATED},  # Timer I
}
NON_INVITE_TRANSITIONS: Final = {
    TxState.TRYING: {
        TxInput.PROVISIONAL: TxState.PROCEEDING,
        TxInput.SUCCESS: TxState.COMPLETED,
        TxInput.FAILURE: TxState.COMPLETED,
    },
    TxState.PROCEEDING: {TxInput.SUCCESS: TxState.COMPLETED, TxInput.FAILURE: TxState.COMPLETED},
    TxState.COMPLETED: {TxInput.TIMEOUT: TxState.TERMINATED},  # Timer J
}


def transaction_key(msg: SipMessage, method: str | None = None) -> TxKey | None:
    """The server transaction a request belongs to (RFC 3261 17.2.3): top Via branch,
    sent-by and method, ACK and CANCEL matched with ``method="INVITE"``. Requests of RFC
    2543 clients (branch without the magic cookie) use Call-ID, From tag, CSeq number and
    the Via value (17.2.3 last paragraph, simplified). None without a usable Via or CSeq."""
    via = msg.top_via
    cseq = msg.cseq
    if via is None or cseq is None:
        return None
    name = method or msg.method or ""
    sent_by = f"{via.host}:{via.port or ''}"
    branch = via.branch
    if branch and branch.startswith(_MAGIC_COOKIE):
        return ("3261", branch, sent_by, name)
    return ("2543", msg.call_id or "", msg.from_tag or "", str(cseq[0]), sent_by, name)


@dataclass(frozen=True, slots=True)
class Resend:
    """A response to send again: ``data`` to ``dst`` over ``transport``."""

    data: bytes
    dst: Endpoint
    transport: Transport


class ServerTransaction:
    """One server transaction; see the module docs."""

    __slots__ = ("dst", "expires_at", "interval", "invite", "key", "last", "state", "transport")

    def __init__(self, key: TxKey, invite: bool, dst: Endpoint, transport: Transport) -> None:
        self.key = key
        self.invite = invite
        self.dst = dst
        self.transport = transport
        self.state = TxState.PROCEEDING if invite else TxState.TRYING
        self.last: bytes | None = None
        self.interval = T1_NS
        self.expires_at = 0  # the one Timer H, I, J or L in force (an ACK replaces H by I)

    @property
    def reliable(self) -> bool:
        """Stream transports need no retransmissions (RFC 3261 17.2.1, 17.2.2)."""
        return self.transport is not Transport.UDP

    def move(self, event: TxInput) -> TxState:
        """Apply ``event`` through the transition table; returns the new state."""
        table = INVITE_TRANSITIONS if self.invite else NON_INVITE_TRANSITIONS
        self.state = table.get(self.state, {}).get(event, self.state)
        return self.state

    def retransmission(self) -> bytes | None:
        """What to answer a retransmitted request with: the last response, except for an
        INVITE in ACCEPTED or CONFIRMED state (absorbed, RFC 6026 7.1, RFC 3261 17.2.1)."""
        if self.state in (TxState.ACCEPTED, TxState.CONFIRMED, TxState.TERMINATED):
            return None
        return self.last


class _Timer(enum.Enum):
    RETRANSMIT = "G"
    EXPIRE = "H/I/J/L"


class ServerTransactions:
    """The server transactions of one user agent, with their timers."""

    def __init__(self) -> None:
        self._table: dict[TxKey, ServerTransaction] = {}
        self._timers: list[tuple[int, int, _Timer, TxKey]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._table)

    def get(self, key: TxKey) -> ServerTransaction | None:
        """The live transaction with ``key``."""
        return self._table.get(key)

    def create(self, key: TxKey, invite: bool, dst: Endpoint, transport: Transport) -> None:
        """Start a transaction for a new request."""
        self._table[key] = ServerTransaction(key, invite, dst, transport)

    def respond(self, key: TxKey, data: bytes, code: int, now: int) -> None:
        """Record the response ``data`` (status ``code``) sent in transaction ``key``."""
        tx = self._table.get(key)
        if tx is None:
            return
        tx.last = data
        if code < 200:
            tx.move(TxInput.PROVISIONAL)
            return
        state = tx.move(TxInput.SUCCESS if code < 300 else TxInput.FAILURE)
        if state is TxState.ACCEPTED:
            self._schedule(now + 64 * T1_NS, _Timer.EXPIRE, key)  # Timer L
        elif tx.invite:
            if not tx.reliable:
                self._schedule(now + T1_NS, _Timer.RETRANSMIT, key)  # Timer G
            self._schedule(now + 64 * T1_NS, _Timer.EXPIRE, key)  # Timer H
        else:
            self._schedule(now + (0 if tx.reliable else 64 * T1_NS), _Timer.EXPIRE, key)  # J

    def ack(self, key: TxKey, now: int) -> bool:
        """An ACK for a non-2xx final response; True if it matched a transaction."""
        tx = self._table.get(key)
        if tx is None or tx.state not in (TxState.COMPLETED, TxState.CONFIRMED):
            return False
        if tx.state is TxState.COMPLETED:
            tx.move(TxInput.ACK)
            self._schedule(now + (0 if tx.reliable else T4_NS), _Timer.EXPIRE, key)  # Timer I
        return True

    def expire(self, now: int) -> list[Resend]:
        """Fire the timers due by ``now``; returns the responses to retransmit."""
        resend: list[Resend] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, _seq, kind, key = heapq.heappop(timers)
            tx = self._table.get(key)
            if tx is None:
                continue
            if kind is _Timer.EXPIRE:
                if due != tx.expires_at:
                    continue  # replaced by a later timer
                if tx.move(TxInput.TIMEOUT) is TxState.TERMINATED:
                    del self._table[key]
            elif tx.state is TxState.COMPLETED and tx.last is not None:
                resend.append(Resend(tx.last, tx.dst, tx.transport))
                tx.interval = min(2 * tx.interval, T2_NS)
                self._schedule(now + tx.interval, _Timer.RETRANSMIT, key)
        return resend

    def next_deadline(self) -> int | None:
        """When `expire` next has work (None: no timer pending)."""
        return self._timers[0][0] if self._timers else None

    def _schedule(self, due: int, kind: _Timer, key: TxKey) -> None:
        if kind is _Timer.EXPIRE:
            self._table[key].expires_at = due
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, kind, key))
