"""A small, realistic city hall day for the browser tests and the screenshots: wards and
sections, a morning of calls (answered, abandoned, busy, transferred) with full SIP ladders,
a recorded call with hold and DTMF, capture samples with a burst of drops."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from callscope.store.models import Call, CaptureSample, OrgUnit

from ._factory import attach_recording, iso, make_call

A, P, B = "10.20.0.15:5060", "10.1.0.2:5060", "10.20.4.31:5060"


def units() -> dict[str, OrgUnit]:
    day = dt.date(2024, 4, 1)
    made: dict[str, OrgUnit] = {}
    for code, name, level, parent in (
        ("W01", "中央区役所", "ward", None),
        ("W01-HK", "保険年金課", "section", "W01"),
        ("W01-SM", "市民課", "section", "W01"),
        ("B01", "こども家庭局", "bureau", None),
        ("B01-HS", "保育所入所課", "section", "B01"),
        ("B02", "環境局", "bureau", None),
        ("B02-GM", "ごみ収集課", "section", "B02"),
    ):
        top = made.get(parent) if parent else None
        unit = OrgUnit.objects.create(
            code=code, name=name, level=level, parent=top, top=top, valid_from=day
        )
        if top is None:
            unit.top = unit
            unit.save(update_fields=["top"])
        made[code] = unit
    return made


def _ladder(start: dt.datetime, talk: float, *, hold: bool) -> list[dict[str, Any]]:
    def at(seconds: float) -> str | None:
        return iso(start + dt.timedelta(seconds=seconds))

    rows = [
        (0.0, A, P, "INVITE", ""), (0.002, P, A, "100 Trying", ""), (0.01, P, B, "INVITE", ""),
        (0.2, B, P, "180 Ringing", ""), (0.21, P, A, "180 Ringing", ""),
        (6.0, B, P, "200 OK", ""), (6.01, P, A, "200 OK", ""), (6.02, A, P, "ACK", ""),
        (6.03, P, B, "ACK", ""),
    ]  # fmt: skip
    if hold:
        rows += [
            (8.0, B, P, "INVITE", "sendonly (hold)"), (8.01, P, B, "200 OK", ""),
            (11.0, B, P, "INVITE", "sendrecv (resume)"), (11.01, P, B, "200 OK", ""),
        ]  # fmt: skip
    end = 6.0 + talk
    rows += [(end, A, P, "BYE", ""), (end + 0.01, P, B, "BYE", ""),
             (end + 0.02, B, P, "200 OK", ""), (end + 0.03, P, A, "200 OK", "")]  # fmt: skip
    return [
        {"at": at(t), "src": s, "dst": d, "label": label, **({"detail": note} if note else {})}
        for t, s, d, label, note in rows
    ]


def city_morning(seconds: float = 8.0) -> Call:
    """Calls of this morning (JST); returns the recorded call with hold and DTMF."""
    made = units()
    nine = timezone.localtime().replace(hour=9, minute=0, second=0, microsecond=0)
    if nine > timezone.now():
        nine -= dt.timedelta(days=1)
    numbers = ["0783321234", "09012345678", "0782221111", "08055556666", "0120123456"]
    results = ["answered", "answered", "cancelled", "answered", "busy", "answered", "no_answer"]
    sections = [made["W01-HK"], made["B01-HS"], made["W01-SM"], made["B02-GM"]]
    for i in range(36):
        start = nine + dt.timedelta(minutes=7 * i, seconds=13 * i)
        result = results[i % len(results)]
        answered = result == "answered"
        call = make_call(
            start,
            caller={"number": numbers[i % len(numbers)], "uri": "", "display_name": None},
            callee={"number": f"{2100 + i % 9}", "uri": "", "display_name": None},
            result=result,
            final_code={"answered": 200, "cancelled": 487, "busy": 486}.get(result, 480),
            answered_at=iso(start + dt.timedelta(seconds=6)) if answered else None,
            setup_seconds=6.0 + (i % 5) * 7.3,
            talk_seconds=45.0 + i * 17.5 if answered else None,
        )
        Call.objects.filter(pk=call.pk).update(callee_unit=sections[i % len(sections)])
    start = nine + dt.timedelta(hours=1, minutes=42)
    talk = seconds - 6.0
    recorded = make_call(
        start,
        ladder=False,
        caller={"number": "09087654321", "uri": "sip:09087654321@pbx", "display_name": ""},
        callee={"number": "2101", "uri": "sip:2101@pbx", "display_name": ""},
        answered_at=iso(start + dt.timedelta(seconds=6)),
        ended_at=iso(start + dt.timedelta(seconds=6 + talk)),
        setup_seconds=6.0, ring_seconds=5.8, talk_seconds=talk, hold_seconds=3.0,
        dtmf=[{"digit": "3", "direction": "caller_to_callee", "at": iso(start + dt.timedelta(
            seconds=7.5)), "method": "rfc4733"}],
        anomalies=[{"kind": "rtp_late_packets", "count": 4}],
    )  # fmt: skip
    Call.objects.filter(pk=recorded.pk).update(
        callee_unit=made["W01-HK"], ladder=_ladder(start, talk, hold=True)
    )
    attach_recording(recorded, seconds=seconds, ring=6.0)
    recorded.refresh_from_db()
    return recorded


def capture_samples(drops: bool = True) -> None:
    now = timezone.now()
    for source, kind, base in (("eth1", "live", 5200), ("hep-kamailio", "hep", 1300)):
        for m in range(60):
            burst = drops and source == "eth1" and m in (1, 2)
            CaptureSample.objects.create(
                source=source,
                kind=kind,
                at=now - dt.timedelta(minutes=m),
                packets=base + (m * 37) % 900,
                kernel_drops=140 if burst else 0,
                calls_in_progress=12 if source == "eth1" else 4,
                spool_backlog=2,
            )
