"""The synthetic city's organisation and number directory (a large ordinance-designated city).

HQ bureaus (局) with departments and sections, and nine ward offices (区役所), each with
the citizen-facing sections that get most calls. Every section has a group number (代表,
078-322-xxxx at HQ, the ward's own exchange in wards), staff extensions, and some services
an IVR in front. Each April the organisation changes a little: in the second fiscal year
保育課 becomes 幼保連携課 (new code, new unit rows) and its numbers follow, so that analytics
meet validity dates as they do in a real city.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from callscope.store.models import DirectoryEntry, OrgUnit

WARDS = [  # name, code, exchange (市外局番 078 + 3 digits)
    ("東灘区", "HIGASHINADA", "841"), ("灘区", "NADA", "843"), ("中央区", "CHUO", "232"),
    ("兵庫区", "HYOGO", "511"), ("北区", "KITA", "593"), ("長田区", "NAGATA", "579"),
    ("須磨区", "SUMA", "731"), ("垂水区", "TARUMI", "708"), ("西区", "NISHI", "929"),
]  # fmt: skip

# Service profile: (talk median s, wait median s, patience mean s, IVR in front,
# month multipliers Jan..Dec). Peaks: nursery applications in autumn and results in
# February, resident tax notices in June, moving season in March/April, year-end waste.
SERVICES: dict[str, tuple[float, float, float, bool, tuple[float, ...]]] = {
    "保育所入所": (330, 35, 150, True,
        (1.2, 1.5, 1.4, 1.5, 0.9, 0.8, 0.8, 0.7, 0.9, 1.4, 1.5, 1.0)),
    "児童手当": (240, 25, 160, False,
        (1.0, 1.0, 1.3, 1.4, 1.0, 1.5, 1.0, 0.8, 0.9, 1.1, 0.9, 0.8)),
    "国民健康保険": (260, 40, 140, True,
        (1.0, 1.0, 1.3, 1.5, 1.0, 1.6, 1.4, 0.9, 0.9, 0.9, 0.9, 0.8)),
    "国民年金": (280, 30, 150, False,
        (1.0, 1.0, 1.2, 1.4, 1.1, 1.0, 1.1, 0.9, 0.9, 0.9, 0.9, 0.8)),
    "市民税": (270, 45, 140, True,
        (1.1, 1.3, 1.4, 1.0, 1.0, 2.0, 1.3, 0.8, 0.8, 0.8, 0.8, 0.7)),
    "ごみ・資源回収": (120, 20, 120, True,
        (1.1, 0.9, 1.4, 1.5, 1.1, 1.0, 1.0, 1.0, 0.9, 0.9, 1.0, 1.4)),
    "戸籍・住民票": (170, 25, 140, False,
        (1.0, 1.1, 1.6, 1.6, 1.0, 0.9, 0.9, 0.8, 0.9, 0.9, 0.9, 0.9)),
    "介護保険": (300, 30, 180, False,
        (1.0, 1.0, 1.1, 1.3, 1.0, 1.0, 1.2, 1.0, 1.0, 1.0, 1.0, 0.9)),
    "障害福祉": (320, 30, 180, False, (1.0,) * 12),
    "生活保護": (360, 20, 200, False, (1.0,) * 12),
    "健康診査": (200, 20, 160, False,
        (0.8, 0.8, 0.9, 1.2, 1.3, 1.2, 1.1, 1.0, 1.0, 1.1, 1.0, 0.8)),
    "固定資産税": (260, 30, 140, False,
        (1.0, 1.0, 1.0, 2.2, 1.6, 1.0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8)),
    "市営住宅": (240, 30, 160, False, (1.0,) * 12),
    "道路・公園": (200, 25, 160, False, (1.0,) * 12),
    "総務・庶務": (150, 10, 180, False, (1.0,) * 12),
}  # fmt: skip

# HQ: bureau -> department -> [(section, service, weight)]; weight ~ share of calls.
HQ: dict[str, dict[str, list[tuple[str, str, float]]]] = {
    "こども家庭局": {"子育て支援部": [("保育課", "保育所入所", 3.0),
                                 ("子育て支援課", "児童手当", 2.0),
                                 ("家庭支援課", "障害福祉", 0.8)]},
    "福祉局": {"高齢福祉部": [("介護保険課", "介護保険", 2.0), ("高齢福祉課", "介護保険", 1.0)],
             "障害福祉部": [("障害福祉課", "障害福祉", 1.0)],
             "国保年金医療部": [("国保年金医療課", "国民健康保険", 2.5),
                           ("年金課", "国民年金", 1.0)]},
    "健康局": {"保健所": [("保健課", "健康診査", 1.5), ("予防衛生課", "健康診査", 1.0)]},
    "環境局": {"資源循環部": [("業務課", "ごみ・資源回収", 2.5),
                          ("粗大ごみ受付センター", "ごみ・資源回収", 3.0)],
             "環境保全部": [("環境保全課", "道路・公園", 0.6)]},
    "行財政局": {"税務部": [("市民税課", "市民税", 3.0), ("固定資産税課", "固定資産税", 1.5),
                        ("収納管理課", "市民税", 1.5)],
              "総務部": [("人事課", "総務・庶務", 0.8), ("財政課", "総務・庶務", 0.5)]},
    "企画調整局": {"政策調整部": [("政策調整課", "総務・庶務", 0.5)]},
    "建設局": {"道路部": [("道路管理課", "道路・公園", 1.0)],
             "公園部": [("公園課", "道路・公園", 0.7)]},
    "建築住宅局": {"住宅部": [("市営住宅課", "市営住宅", 1.2)]},
    "経済観光局": {"経済政策部": [("経済政策課", "総務・庶務", 0.5)]},
}  # fmt: skip

WARD_DEPARTMENTS: dict[str, list[tuple[str, str, float]]] = {
    "総務部": [("総務課", "総務・庶務", 0.5), ("まちづくり課", "道路・公園", 0.5)],
    "市民部": [("市民課", "戸籍・住民票", 3.0), ("保険年金医療課", "国民健康保険", 2.5),
             ("国民年金係", "国民年金", 0.8)],
    "保健福祉部": [("こども家庭支援課", "保育所入所", 2.0), ("児童手当係", "児童手当", 1.0),
                ("健康福祉課", "介護保険", 1.5), ("保護課", "生活保護", 1.2)],
}  # fmt: skip


@dataclass
class Section:
    """A synthetic section and its numbers in one fiscal year."""

    unit_id: int
    top_code: str
    service: str
    weight: float
    is_ward: bool
    group_number: str
    ivr_number: str
    extensions: list[str] = field(default_factory=list)


@dataclass
class City:
    """The units and numbers of each fiscal year (April to March)."""

    sections: dict[int, list[Section]] = field(default_factory=dict)  # fiscal year -> sections

    def year_of(self, day: dt.date) -> list[Section]:
        fy = day.year if day.month >= 4 else day.year - 1
        return self.sections[min(max(fy, min(self.sections)), max(self.sections))]


def fiscal_year(day: dt.date) -> int:
    return day.year if day.month >= 4 else day.year - 1


class _Builder:
    def __init__(self, first_fy: int, last_fy: int) -> None:
        self.first, self.last = first_fy, last_fy
        self.units: list[OrgUnit] = []
        self.entries: list[DirectoryEntry] = []
        self.city = City({fy: [] for fy in range(first_fy, last_fy + 1)})
        self.next_ext = 20000

    def unit(
        self,
        code: str,
        name: str,
        level: str,
        parent: OrgUnit | None,
        *,
        ward: bool,
        years: tuple[int, int],
    ) -> OrgUnit:
        start, end = years
        unit = OrgUnit.objects.create(
            code=code, name=name, level=level, parent=parent, is_ward=ward,
            valid_from=dt.date(start, 4, 1),
            valid_to=None if end >= self.last else dt.date(end + 1, 3, 31),
        )  # fmt: skip
        unit.top = parent.top if parent else unit
        if parent is not None and parent.level == OrgUnit.Level.DEPARTMENT:
            unit.department = parent
        unit.save(update_fields=["top", "department"])
        return unit

    def numbers(
        self,
        unit: OrgUnit,
        *,
        exchange: str,
        serial: int,
        service: str,
        weight: float,
        top_code: str,
        ward: bool,
        years: tuple[int, int],
    ) -> None:
        start, end = years
        valid_from = dt.date(start, 4, 1)
        valid_to = None if end >= self.last else dt.date(end + 1, 3, 31)
        group = f"078{exchange}{serial:04d}"
        ivr = f"078{exchange}{serial + 5000:04d}" if SERVICES[service][3] else ""
        extensions = [str(self.next_ext + i) for i in range(6)]
        self.next_ext += 10
        kinds = [(group, DirectoryEntry.Kind.GROUP, "代表")]
        if ivr:
            kinds.append((ivr, DirectoryEntry.Kind.IVR, "音声案内"))
        kinds += [(ext, DirectoryEntry.Kind.STAFF, "内線") for ext in extensions]
        for number, kind, label in kinds:
            self.entries.append(
                DirectoryEntry(
                    number=number,
                    unit=unit,
                    kind=kind,
                    label=f"{unit.name} {label}",
                    valid_from=valid_from,
                    valid_to=valid_to,
                )
            )
        for fy in range(start, end + 1):
            self.city.sections[fy].append(
                Section(unit.id, top_code, service, weight, ward, group, ivr, extensions)
            )


REORGANISED = ("保育課", "幼保連携課")  # renamed (new code) from the second fiscal year on


def build_city(first_day: dt.date, last_day: dt.date) -> City:
    """Create the organisation and directory covering ``first_day``..``last_day``."""
    first_fy, last_fy = fiscal_year(first_day), fiscal_year(last_day)
    b = _Builder(first_fy, last_fy)
    every = (first_fy, last_fy)
    serial = 1000
    for n, (bureau, departments) in enumerate(HQ.items()):
        top_code = f"HQ{n:02d}"
        top = b.unit(top_code, bureau, OrgUnit.Level.BUREAU, None, ward=False, years=every)
        for m, (dept_name, sections) in enumerate(departments.items()):
            dept = b.unit(
                f"{top_code}-{m}", dept_name, OrgUnit.Level.DEPARTMENT, top, ward=False, years=every
            )
            for k, (name, service, weight) in enumerate(sections):
                code = f"{top_code}-{m}-{k}"
                periods = [(name, code, every)]
                if name == REORGANISED[0] and last_fy > first_fy:
                    periods = [
                        (name, code, (first_fy, first_fy)),
                        (REORGANISED[1], code + "R", (first_fy + 1, last_fy)),
                    ]
                for unit_name, unit_code, years in periods:
                    section = b.unit(
                        unit_code, unit_name, OrgUnit.Level.SECTION, dept, ward=False, years=years
                    )
                    b.numbers(
                        section,
                        exchange="322",
                        serial=serial,
                        service=service,
                        weight=weight,
                        top_code=top_code,
                        ward=False,
                        years=years,
                    )
                serial += 10
    for ward_name, ward_code, exchange in WARDS:
        top = b.unit(
            ward_code, f"{ward_name}役所", OrgUnit.Level.WARD, None, ward=True, years=every
        )
        ward_serial = 4100
        for m, (dept_name, sections) in enumerate(WARD_DEPARTMENTS.items()):
            dept = b.unit(
                f"{ward_code}-{m}", dept_name, OrgUnit.Level.DEPARTMENT, top, ward=True, years=every
            )
            for k, (name, service, weight) in enumerate(sections):
                section = b.unit(
                    f"{ward_code}-{m}-{k}",
                    name,
                    OrgUnit.Level.SECTION,
                    dept,
                    ward=True,
                    years=every,
                )
                b.numbers(
                    section,
                    exchange=exchange,
                    serial=ward_serial,
                    service=service,
                    weight=weight,
                    top_code=ward_code,
                    ward=True,
                    years=every,
                )
                ward_serial += 10
    DirectoryEntry.objects.bulk_create(b.entries, batch_size=2000)
    return b.city
