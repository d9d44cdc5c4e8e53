"""The SDP endpoint map: which call and party receive media at an address and port.

Every offer and answer (RFC 3264) registers, for each m= line, the connection address and
port where the party that sent it receives RTP, and its RTCP port (RFC 3605 a=rtcp, else
port + 1, none with RFC 5761 a=rtcp-mux). Registrations are ordered by age: the newest SDP
that names an endpoint wins it, so a port reused by a later call belongs to that call.

`EndpointMap.resolve(src, dst)` decides, once per flow, which call a flow belongs to:

1. a call whose parties' SDPs name both the destination and the source (symmetric RTP,
   RFC 4961) wins: the flow is trusted. When several calls name the same pair (a B2BUA
   that moved the media directly between the phones), the newest registration of the
   destination decides and the calls are reported as one conversation;
2. otherwise the newest registration of the destination (the party receiving it);
3. otherwise the newest registration of the source (the party sending from the port it
   receives on).

A call is never found by SSRC: SIPp and many devices reuse the same SSRC in every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from callscope.assembly.records import PayloadFormat
from callscope.core.frozen import quick_init
from callscope.protocol.dialog import Role

__all__ = ["EndpointKey", "EndpointMap", "Registration", "Resolution"]

#: ``(ip, port)``, the IP in the canonical text form the capture layer uses
EndpointKey = tuple[str, int]
_O = TypeVar("_O")


@quick_init
@dataclass(frozen=True, slots=True)
class Registration(Generic[_O]):
    """``party`` of ``owner`` receives ``media`` at an endpoint (``rtcp``: its RTCP port)."""

    owner: _O
    party: Role
    media: str
    payload_map: Mapping[int, PayloadFormat]
    rtcp: bool
    serial: int


@quick_init
@dataclass(frozen=True, slots=True)
class Resolution(Generic[_O]):
    """The call a flow belongs to, who sends it, and what the SDP says about it."""

    owner: _O
    sender: Role
    media: str
    rtcp: bool
    trusted: bool
    payload_map: dict[int, PayloadFormat]
    linked: tuple[_O, ...] = ()


class EndpointMap(Generic[_O]):
    """Registrations per endpoint, oldest first (see the module docs)."""

    __slots__ = ("_by_owner", "_regs", "_serial")

    def __init__(self) -> None:
        self._regs: dict[EndpointKey, list[Registration[_O]]] = {}
        self._by_owner: dict[int, set[EndpointKey]] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._regs)

    def register(
        self,
        key: EndpointKey,
        owner: _O,
        party: Role,
        media: str,
        payload_map: Mapping[int, PayloadFormat],
        *,
        rtcp: bool = False,
    ) -> bool:
        """Register an endpoint; returns False if it was already the owner's newest one
        with the same meaning (nothing changed, flows need not be looked up again)."""
        regs = self._regs.get(key)
        if regs is None:
            regs = self._regs[key] = []
        elif regs:
            last = regs[-1]
            if (
                last.owner is owner
                and last.party is party
                and last.rtcp == rtcp
                and last.media == media
                and last.payload_map == payload_map
            ):
                return False
            regs[:] = [r for r in regs if not (r.owner is owner and r.party is party)]
        self._serial += 1
        regs.append(Registration(owner, party, media, dict(payload_map), rtcp, self._serial))
        keys = self._by_owner.get(id(owner))
        if keys is None:
            keys = self._by_owner[id(owner)] = set()
        keys.add(key)
        return True

    def unregister(self, owner: _O) -> list[EndpointKey]:
        """Forget every endpoint of ``owner``; returns the endpoints it had."""
        keys = self._by_owner.pop(id(owner), set())
        for key in keys:
            regs = self._regs.get(key)
            if regs is None:
                continue
            if len(regs) == 1 and regs[0].owner is owner:
                del self._regs[key]  # the usual case: the endpoint was the owner's alone
                continue
            regs[:] = [r for r in regs if r.owner is not owner]
            if not regs:
                del self._regs[key]
        return list(keys)

    def registrations(self, key: EndpointKey) -> list[Registration[_O]]:
        """The registrations of one endpoint, oldest first."""
        return list(self._regs.get(key, ()))

    def resolve(self, src: EndpointKey, dst: EndpointKey) -> Resolution[_O] | None:
        """The call a flow ``src -> dst`` belongs to (see the module docs), or None."""
        to_dst = self._regs.get(dst)
        from_src = self._regs.get(src)
        if to_dst and from_src:
            found = _pair(to_dst, from_src)
            if found is not None:
                return found
        if to_dst:
            reg = to_dst[-1]
            other = _same_owner(from_src, reg.owner)
            return _resolution(reg, reg.party.other, other, trusted=False)
        if from_src:
            reg = from_src[-1]
            return _resolution(reg, reg.party, None, trusted=False)
        return None


def _same_owner(regs: list[Registration[_O]] | None, owner: _O) -> Registration[_O] | None:
    for reg in reversed(regs or ()):
        if reg.owner is owner:
            return reg
    return None


def _pair(
    to_dst: list[Registration[_O]], from_src: list[Registration[_O]]
) -> Resolution[_O] | None:
    """Calls naming both ends of the flow, for opposite parties: the newest at ``dst`` wins."""
    senders = {id(r.owner): r for r in from_src}
    matches = [
        r
        for r in to_dst
        if id(r.owner) in senders
        and senders[id(r.owner)].party is not r.party
        and senders[id(r.owner)].rtcp == r.rtcp
    ]
    if not matches:
        return None
    chosen = matches[-1]
    linked = tuple({id(r.owner): r.owner for r in matches if r.owner is not chosen.owner}.values())
    found = _resolution(chosen, chosen.party.other, senders[id(chosen.owner)], trusted=True)
    return Resolution(
        found.owner, found.sender, found.media, found.rtcp, True, found.payload_map, linked
    )


def _resolution(
    reg: Registration[_O], sender: Role, other: Registration[_O] | None, *, trusted: bool
) -> Resolution[_O]:
    """Payload types: the sender's SDP, overridden by the receiver's (RFC 3264 5.1: the
    receiver's numbering is what the sender must use)."""
    payload_map: dict[int, PayloadFormat] = {}
    receiver, sender_reg = (reg, other) if reg.party is not sender else (other, reg)
    if sender_reg is not None:
        payload_map.update(sender_reg.payload_map)
    if receiver is not None:
        payload_map.update(receiver.payload_map)
    return Resolution(reg.owner, sender, reg.media, reg.rtcp, trusted, payload_map)
