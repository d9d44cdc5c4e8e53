"""The directory CSV: validation messages, all-or-nothing import, April reorganisation."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from callscope.analytics import directory, orgindex
from callscope.analytics.conversations import Flow
from callscope.store.models import AuditEntry, DirectoryEntry, OrgUnit

HEADER = "record,code,name,level,parent,number,kind,label,valid_from,valid_to\n"

# FY2024: 保育課 under こども家庭局; from April 2025 the section moves to a new 保育・幼児教育課
# (new code), and its group number follows it. 東灘区 has a 市民課 calling HQ.
CITY = HEADER + (
    "unit,KODOMO,こども家庭局,bureau,,,,,2024-04-01,\n"
    "unit,KODOMO-HOIKU,保育課,section,KODOMO,,,,2024-04-01,2025-03-31\n"
    "unit,KODOMO-YOJI,保育・幼児教育課,section,KODOMO,,,,2025-04-01,\n"
    "unit,HGN,東灘区役所,ward,,,,,2024-04-01,\n"
    "unit,HGN-SHIMIN,市民課,section,HGN,,,,2024-04-01,\n"
    "number,KODOMO-HOIKU,,,,078-322-5111,group,保育 代表,2024-04-01,2025-03-31\n"
    "number,KODOMO-YOJI,,,,078-322-5111,group,保育 代表,2025-04-01,\n"
    "number,KODOMO-YOJI,,,,0783225100,ivr,保育 音声案内,2025-04-01,\n"
    "number,HGN-SHIMIN,,,,41001,staff,市民課 窓口,2024-04-01,\n"
)


@pytest.fixture
def city(db):
    directory.import_directory(CITY.encode(), source="city.csv")
    return {u.code: u for u in OrgUnit.objects.all()}


def errors_of(text: str) -> list[str]:
    with pytest.raises(directory.DirectoryError) as err:
        directory.import_directory((HEADER + text).encode())
    return [e.describe() for e in err.value.errors]


def test_import_builds_the_tree(city):
    hoiku = city["KODOMO-HOIKU"]
    assert hoiku.parent == city["KODOMO"]
    assert hoiku.top == city["KODOMO"]
    assert city["KODOMO"].top == city["KODOMO"]
    assert city["HGN-SHIMIN"].is_ward and not hoiku.is_ward
    assert DirectoryEntry.objects.count() == 4
    entry = AuditEntry.objects.get(action="directory.import")
    assert entry.target == "city.csv"
    assert entry.detail == {
        "units_created": 5,
        "units_updated": 0,
        "numbers_created": 4,
        "numbers_updated": 0,
    }


def test_calls_are_counted_under_the_unit_in_force_on_their_jst_date(city):
    # 2025-03-31 23:30 JST is still FY2024; it is 14:30 UTC on the 31st.
    before = dt.datetime(2025, 3, 31, 14, 30, tzinfo=dt.UTC)
    after = dt.datetime(2025, 3, 31, 15, 30, tzinfo=dt.UTC)  # 00:30 JST on 1 April
    direction, caller, callee, caller_class, callee_class = orgindex.classify_call(
        "09012345678", "0783225111", before
    )
    assert direction is Flow.INBOUND
    assert caller is None and callee == city["KODOMO-HOIKU"]
    assert caller_class == "mobile" and callee_class == "group"
    placement = orgindex.classify_call("+819012345678", "078-322-5111", after)
    assert placement.callee_unit == city["KODOMO-YOJI"]


def test_direction_from_the_directory(city):
    at = dt.datetime(2025, 6, 2, 1, 0, tzinfo=dt.UTC)
    assert orgindex.classify_call("41001", "0783225111", at).direction is Flow.WARD_HQ
    assert orgindex.classify_call("41001", "0312345678", at).direction is Flow.OUTBOUND
    assert orgindex.classify_call("anonymous", "0783225100", at).callee_class == "ivr"
    unknown = orgindex.classify_call("0312345678", "0661234567", at)
    assert unknown.direction is Flow.UNKNOWN and unknown.caller_class == "fixed"
    assert orgindex.as_call_direction(Flow.WARD_HQ) == "internal"


def test_classify_call_reuses_one_lookup_per_validity_period(city):
    # speed is measured by bench/analytics_dashboards.py, not by timed tests
    index = orgindex.current_index()
    june, july = dt.date(2025, 6, 2), dt.date(2025, 7, 1)
    assert index.numbers_on(june) is index.numbers_on(july)  # same period, same table
    assert index.numbers_on(dt.date(2025, 3, 31)) is not index.numbers_on(june)
    at = dt.datetime(2025, 6, 2, 1, 0, tzinfo=dt.UTC)
    assert orgindex.current_index() is index
    assert orgindex.classify_call("09012345678", "0783225111", at).callee_unit is not None


def test_export_reimports_to_the_same_directory(city):
    data = directory.export_directory()
    assert data.startswith("\ufeff".encode())
    assert "保育・幼児教育課" in data.decode("utf-8-sig")
    report = directory.import_directory(data)
    assert report.units_created == 0 and report.units_updated == 5
    assert report.numbers_created == 0 and report.numbers_updated == 4


def test_reimport_updates_changed_numbers_and_keeps_the_others(city):
    text = HEADER + "number,HGN-SHIMIN,,,,078-322-5100,staff,市民課 案内,2025-04-01,2025-09-30\n"
    report = directory.import_directory(text.encode())
    assert (report.numbers_created, report.numbers_updated) == (0, 1)
    entry = DirectoryEntry.objects.get(number="0783225100")
    assert (entry.unit.code, entry.kind, entry.label, entry.valid_to) == (
        "HGN-SHIMIN", "staff", "市民課 案内", dt.date(2025, 9, 30))  # fmt: skip
    assert DirectoryEntry.objects.count() == 4


def test_export_of_one_day_has_what_is_in_force(city):
    text = directory.export_directory(on=dt.date(2024, 10, 1)).decode("utf-8-sig")
    assert "KODOMO-HOIKU" in text and "KODOMO-YOJI" not in text
    assert [line.split(",")[5] for line in text.splitlines() if line.startswith("number")] == [
        "0783225111", "41001"]  # fmt: skip
    assert not directory.check_directory(text.encode()).errors


def test_shift_jis_files_and_japanese_headers(db):
    text = "種別,コード,名称,階層,上位コード,番号,番号種別,表示名,開始日,終了日\n"
    text += "unit,NADA,灘区役所,ward,,,,,2024-04-01,\n"
    report = directory.import_directory(text.encode("cp932"))
    assert report.units_created == 1
    assert OrgUnit.objects.get().name == "灘区役所"


@pytest.mark.parametrize(
    ("rows", "messages"),
    [
        (
            "team,X,x,section,,,,,2024-04-01,\n",
            ["2行目 record: 種別は unit か number です"
             " / line 2, record: record must be unit or number"],
        ),
        (
            "unit,,名前,bureau,,,,,2024-04-01,\n",
            ["2行目 code: 必須項目が空です / line 2, code: a required value is empty"],
        ),
        (
            "unit,A,名前,bureau,,,,,2024/04/01,\n",
            ["2行目 valid_from: 日付は YYYY-MM-DD 形式で入力してください"
             " / line 2, valid_from: dates are written YYYY-MM-DD"],
        ),
        (
            "unit,A,名前,bureau,,,,,2024-04-01,2024-03-31\n",
            ["2行目 valid_to: 終了日が開始日より前です"
             " / line 2, valid_to: valid_to is before valid_from"],
        ),
        (
            "unit,A,名前,team,,,,,2024-04-01,\n",
            ["2行目 level: 階層は bureau, ward, department, section のいずれかです"
             " / line 2, level: level must be bureau, ward, department or section"],
        ),
        (
            "unit,A,名前,ward,B,,,,2024-04-01,\n",
            ["2行目 parent: 局・区役所に上位組織は指定できません"
             " / line 2, parent: a bureau or ward has no parent"],
        ),
        (
            "unit,A,名前,section,NOPE,,,,2024-04-01,\n",
            ["2行目 parent: 上位組織がこの期間に存在しません"
             " / line 2, parent: no parent unit with this code covers the period"],
        ),
        (
            "unit,A,局,bureau,,,,,2024-04-01,\nunit,S,課,section,A,,,,2024-04-01,\n"
            "unit,D,部,department,S,,,,2024-04-01,\n",
            ["4行目 level: この階層はその上位組織の下に置けません"
             " / line 4, level: this level cannot sit under that parent"],
        ),
        (
            "unit,A,局,bureau,,,,,2024-04-01,\nnumber,A,,,,12,staff,,2024-04-01,\n",
            ["3行目 number: 電話番号または内線番号として正しくありません"
             " / line 3, number: not a valid phone number or extension"],
        ),
        (
            "unit,A,局,bureau,,,,,2024-04-01,\nnumber,A,,,,1234,robot,,2024-04-01,\n",
            ["3行目 kind: 番号種別は staff, group, ivr, fax のいずれかです"
             " / line 3, kind: kind must be staff, group, ivr or fax"],
        ),
        (
            "unit,A,局,bureau,,,,,2024-04-01,2025-03-31\nnumber,A,,,,1234,staff,,2024-04-01,\n",
            ["3行目 code: 所属組織がこの期間に存在しません"
             " / line 3, code: no unit with this code covers the period"],
        ),
        (
            "unit,A,局,bureau,,,,,2024-04-01,\nunit,A,局,bureau,,,,,2024-04-01,\n",
            ["3行目 code: 同じキー（コードまたは番号と開始日）の行が重複しています"
             " / line 3, code: the same key (code or number and valid_from) appears twice"],
        ),
        (
            "unit,A,局,bureau,,,,,2024-04-01,\nunit,A,局,bureau,,,,,2024-10-01,\n",
            ["2行目 valid_from: 同じコードまたは番号の期間が重なっています"
             " / line 2, valid_from: the period overlaps another of the same code or number",
             "3行目 valid_from: 同じコードまたは番号の期間が重なっています"
             " / line 3, valid_from: the period overlaps another of the same code or number"],
        ),
    ],
)  # fmt: skip
def test_each_bad_row_is_reported(db, rows, messages):
    assert errors_of(rows) == messages


def test_bad_header_and_encoding(db):
    with pytest.raises(directory.DirectoryError) as err:
        directory.import_directory(b"a,b,c\n")
    assert [e.describe() for e in err.value.errors] == [
        "1行目 -: 見出し行に必要な列がありません / line 1, -: the header lacks required columns"
    ]
    with pytest.raises(directory.DirectoryError) as err:
        directory.import_directory(b"\xff\xfe\xfa")
    assert err.value.errors[0].reason == "encoding"


def test_one_bad_row_rejects_the_whole_file(db):
    rows = "unit,A,局,bureau,,,,,2024-04-01,\nunit,B,課,section,A,,,,2024-13-01,\n"
    assert len(errors_of(rows)) == 1
    assert OrgUnit.objects.count() == 0
    assert not AuditEntry.objects.exists()


def test_command_import_and_export(db, tmp_path, capsys):
    good = tmp_path / "city.csv"
    good.write_text(CITY, encoding="utf-8")
    call_command("directory", "import", str(good))
    assert OrgUnit.objects.count() == 5
    out = tmp_path / "out.csv"
    call_command("directory", "export", str(out))
    assert "KODOMO-YOJI" in out.read_text(encoding="utf-8-sig")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "unit,A,局,bureau,,,,,2024-04-01,2023-01-01\n", encoding="utf-8")
    with pytest.raises(CommandError) as err:
        call_command("directory", "import", str(bad))
    assert str(err.value) == "1 error(s): nothing was imported"
    assert "2行目 valid_to: 終了日が開始日より前です" in capsys.readouterr().err


def test_command_check_changes_nothing_and_lists_the_same_errors(db, tmp_path, capsys):
    good = tmp_path / "city.csv"
    good.write_text(CITY, encoding="utf-8")
    call_command("directory", "import", "--check", str(good))
    assert "OK: 5 units" in capsys.readouterr().out
    assert OrgUnit.objects.count() == 0 and not AuditEntry.objects.exists()
    for content in (
        (HEADER + "unit,A,局,bureau,,,,,2024-04-01,2023-01-01\n").encode(),
        b"\xff\xfe\xfa",  # not a text encoding the import accepts
    ):
        bad = tmp_path / "bad.csv"
        bad.write_bytes(content)
        with pytest.raises(CommandError) as err:
            call_command("directory", "import", "--check", str(bad))
        assert str(err.value) == "1 error(s): nothing was imported"
        assert [e.describe() for e in directory.check_directory(content).errors] == [
            line for line in capsys.readouterr().err.splitlines() if line
        ]
