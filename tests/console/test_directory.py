"""The manager's number directory page: listing in force on a day, search, keyset pages,
CSV export and import (all-or-nothing, errors per row), changes to one number, audit."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from callscope.analytics import directory
from callscope.store.models import AuditEntry, DirectoryEntry, OrgUnit

HEADER = "record,code,name,level,parent,number,kind,label,valid_from,valid_to\n"
# FY2024 保育課 becomes 保育・幼児教育課 in April 2025; its group number follows it.
CITY = HEADER + (
    "unit,KODOMO,こども家庭局,bureau,,,,,2024-04-01,\n"
    "unit,KODOMO-HOIKU,保育課,section,KODOMO,,,,2024-04-01,2025-03-31\n"
    "unit,KODOMO-YOJI,保育・幼児教育課,section,KODOMO,,,,2025-04-01,\n"
    "unit,HGN,東灘区役所,ward,,,,,2024-04-01,\n"
    "unit,HGN-SHIMIN,市民課,section,HGN,,,,2024-04-01,\n"
    "number,KODOMO-HOIKU,,,,078-322-5111,group,保育 代表,2024-04-01,2025-03-31\n"
    "number,KODOMO-YOJI,,,,0783225111,group,保育 代表,2025-04-01,\n"
    "number,KODOMO-YOJI,,,,0783225100,ivr,保育 音声案内,2025-04-01,\n"
    "number,HGN-SHIMIN,,,,41001,staff,市民課 窓口,2024-04-01,\n"
)


@pytest.fixture
def city(db):
    directory.import_directory(CITY.encode(), source="city.csv")
    return {u.code: u for u in OrgUnit.objects.all()}


def _page(client, **params):
    response = client.get(reverse("console:directory"), params, HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 200
    return response.content.decode()


def _numbers(html: str) -> list[str]:
    found = re.findall(r'<td class="number"><a href="[^"]+">([^<]+)</a>', html)
    return [number.replace("-", "") for number in found]


def _upload(client, text: str | bytes, mode: str = "import", name: str = "city.csv"):
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        reverse("console:directory_import"),
        {"file": SimpleUploadedFile(name, data, content_type="text/csv"), "mode": mode},
        HTTP_ACCEPT_LANGUAGE="ja",
    )


# -- who may see it ------------------------------------------------------------------------


def test_manager_sees_the_numbers_and_tree_in_force(manager_client, city):
    html = _page(manager_client, on="2024-10-01")
    assert "<h1>番号台帳</h1>" in html
    assert _numbers(html) == ["0783225111", "41001"]
    assert "保育課" in html and "保育・幼児教育課" not in html  # tree of FY2024
    html = _page(manager_client, on="2025-04-01")
    assert _numbers(html) == ["0783225100", "0783225111", "41001"]
    assert "保育・幼児教育課" in html


def test_the_menu_links_the_directory_for_the_manager_only(manager_client, operator_client):
    url = reverse("console:directory")
    assert f'href="{url}"' in manager_client.get(reverse("console:home")).content.decode()
    assert f'href="{url}"' not in operator_client.get(reverse("console:home")).content.decode()


@pytest.mark.parametrize(
    ("name", "method"),
    [("console:directory", "get"), ("console:directory_export", "get"),
     ("console:directory_import", "post"), ("console:directory_entry_new", "post")],
)  # fmt: skip
def test_operator_is_refused_and_nothing_is_written(operator_client, city, name, method):
    before = AuditEntry.objects.count()
    response = getattr(operator_client, method)(reverse(name))
    assert response.status_code == 403
    assert AuditEntry.objects.count() == before


def test_operator_cannot_change_an_entry(operator_client, city):
    entry = DirectoryEntry.objects.get(number="41001")
    url = reverse("console:directory_entry_end", args=[entry.pk])
    assert operator_client.post(url, {"valid_to": "2025-03-31"}).status_code == 403
    entry.refresh_from_db()
    assert entry.valid_to is None


# -- search and pages ----------------------------------------------------------------------


def test_search_by_number_in_any_spelling_and_by_unit_name(manager_client, city):
    assert _numbers(_page(manager_client, on="2025-05-01", q="078-322-5100")) == ["0783225100"]
    assert _numbers(_page(manager_client, on="2025-05-01", q="０７８３２２５１")) == [
        "0783225100",
        "0783225111",
    ]
    assert _numbers(_page(manager_client, on="2025-05-01", q="市民課")) == ["41001"]
    assert _numbers(_page(manager_client, on="2025-05-01", q="存在しない")) == []


def test_unit_filter_includes_the_units_under_it(manager_client, city):
    html = _page(manager_client, on="2025-05-01", unit=city["KODOMO"].pk)
    assert _numbers(html) == ["0783225100", "0783225111"]


def test_history_lists_every_period(manager_client, city):
    html = _page(manager_client, on="2025-05-01", history="on", q="0783225111")
    assert _numbers(html) == ["0783225111", "0783225111"]


def test_keyset_pages_walk_forward_and_back(manager_client, city):
    unit = city["HGN-SHIMIN"]
    DirectoryEntry.objects.bulk_create(
        DirectoryEntry(number=f"4{n:04d}", unit=unit, valid_from=dt.date(2024, 4, 1))
        for n in range(2000, 2120)
    )
    html = _page(manager_client, on="2025-05-01", unit=unit.pk)
    first = _numbers(html)
    assert len(first) == 50 and first[0] == "41001"
    seen = list(first)
    while 'rel="next"' in html:
        query = re.search(r'rel="next" href="[^"?]+\?([^"]+)"', html).group(1)
        html = manager_client.get(f"{reverse('console:directory')}?{query.replace('&amp;', '&')}")
        html = html.content.decode()
        seen += _numbers(html)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 121
    query = re.search(r'rel="prev" href="[^"?]+\?([^"]+)"', html).group(1)
    back = manager_client.get(f"{reverse('console:directory')}?{query.replace('&amp;', '&')}")
    assert _numbers(back.content.decode()) == seen[50:100]


def test_htmx_renders_the_listing_alone(manager_client, city):
    response = manager_client.get(
        reverse("console:directory"), {"on": "2025-05-01"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and _numbers(html)


# -- export and import ---------------------------------------------------------------------


def test_export_round_trips(manager_client, city):
    response = manager_client.get(reverse("console:directory_export"), {"all": "1"})
    assert response["Content-Type"].startswith("text/csv")
    data = response.content
    assert data.startswith("\ufeff".encode())
    DirectoryEntry.objects.all().delete()
    OrgUnit.objects.update(parent=None, top=None, department=None)
    OrgUnit.objects.all().delete()
    assert _upload(manager_client, data).status_code == 302
    again = manager_client.get(reverse("console:directory_export"), {"all": "1"}).content
    assert again == data
    exports = AuditEntry.objects.filter(action="directory.export")
    assert [e.detail for e in exports] == [{"on": None}, {"on": None}]


def test_export_of_a_day_has_what_is_in_force_and_imports_as_no_change(manager_client, city):
    data = manager_client.get(reverse("console:directory_export"), {"on": "2024-10-01"}).content
    text = data.decode("utf-8-sig")
    assert "KODOMO-YOJI" not in text and "0783225100" not in text
    assert text.count("\r\nnumber,") == 2
    assert _upload(manager_client, data).status_code == 302
    entry = AuditEntry.objects.filter(action="directory.import").order_by("-sequence").first()
    assert entry.detail == {"units_created": 0, "units_updated": 4,
                            "numbers_created": 0, "numbers_updated": 2}  # fmt: skip


def test_upload_with_a_bad_row_shows_its_error_and_changes_nothing(manager_client, city):
    before = (DirectoryEntry.objects.count(), OrgUnit.objects.count(), AuditEntry.objects.count())
    response = _upload(
        manager_client,
        HEADER
        + "number,HGN-SHIMIN,,,,41002,staff,窓口2,2024-04-01,\n"
        + "number,HGN-SHIMIN,,,,41003,staff,窓口3,2024-04-31,\n"
        + "number,NOWHERE,,,,41004,staff,窓口4,2024-04-01,\n"
        + "number,HGN-SHIMIN,,,,41005,phone,窓口5,2024-04-01,\n",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "city.csv: 3 件のエラーがあり、何も変更していません" in html
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>', html)
    assert rows == [
        ("3", "開始日 (valid_from)", "日付は YYYY-MM-DD 形式で入力してください"),
        ("4", "コード (code)", "所属組織がこの期間に存在しません"),
        ("5", "番号種別 (kind)", "番号種別は staff, group, ivr, fax のいずれかです"),
    ]
    after = (DirectoryEntry.objects.count(), OrgUnit.objects.count(), AuditEntry.objects.count())
    assert after == before
    assert not DirectoryEntry.objects.filter(number="41002").exists()


def test_reference_errors_are_listed_in_english_too(manager_client, city):
    manager_client.post(reverse("console:set_language"), {"language": "en", "next": "/"})
    response = manager_client.post(
        reverse("console:directory_import"),
        {"file": SimpleUploadedFile("x.csv", (HEADER + "number,NOWHERE,,,,41004,staff,,"
                                               "2024-04-01,\n").encode()), "mode": "import"},
    )  # fmt: skip
    html = response.content.decode()
    assert "no unit with this code covers the period" in html
    assert "<td>code</td>" in html


def test_check_only_changes_nothing(manager_client, city):
    before = AuditEntry.objects.count()
    response = _upload(
        manager_client, HEADER + "number,HGN-SHIMIN,,,,41002,staff,窓口2,2024-04-01,\n", "check"
    )
    html = response.content.decode()
    assert "エラーはありません" in html
    assert not DirectoryEntry.objects.filter(number="41002").exists()
    assert AuditEntry.objects.count() == before


def test_a_good_upload_applies_and_is_audited_once(manager_client, manager, city):
    response = _upload(
        manager_client,
        HEADER
        + "number,HGN-SHIMIN,,,,41002,staff,窓口2,2024-04-01,\n"
        + "number,HGN-SHIMIN,,,,41001,staff,市民課 総合窓口,2024-04-01,\n",
        name="april.csv",
    )
    assert response.status_code == 302 and response["Location"] == reverse("console:directory")
    assert DirectoryEntry.objects.get(number="41002").unit.code == "HGN-SHIMIN"
    assert DirectoryEntry.objects.get(number="41001").label == "市民課 総合窓口"
    entry = AuditEntry.objects.filter(action="directory.import").order_by("-sequence").first()
    assert entry.actor_id == manager.pk and entry.target == "april.csv"
    assert entry.address == "127.0.0.1"
    assert entry.detail == {"units_created": 0, "units_updated": 0,
                            "numbers_created": 1, "numbers_updated": 1}  # fmt: skip
    page = manager_client.get(reverse("console:directory"), HTTP_ACCEPT_LANGUAGE="ja")
    assert "番号 1 件を追加、1 件を更新" in page.content.decode()


def test_an_undecodable_file_is_refused(manager_client, city):
    response = _upload(manager_client, b"\xff\xfe\x00garbage\x81")
    assert "文字コードが UTF-8 でも Shift_JIS でもありません" in response.content.decode()


# -- one number ----------------------------------------------------------------------------


def test_add_a_number_through_the_form(manager_client, manager, city):
    page = manager_client.get(reverse("console:directory_entry_new")).content.decode()
    for field in ("number", "unit", "kind", "label", "valid_from", "valid_to"):
        assert f'<label for="id_{field}">' in page
    response = manager_client.post(
        reverse("console:directory_entry_new"),
        {"number": "078-322-5200", "unit": city["KODOMO-YOJI"].pk, "kind": "fax",
         "label": "保育 FAX", "valid_from": "2025-04-01"},
    )  # fmt: skip
    entry = DirectoryEntry.objects.get(number="0783225200")
    assert response["Location"] == reverse("console:directory_entry", args=[entry.pk])
    audit = AuditEntry.objects.get(action="directory.entry_add")
    assert audit.target == "directory:0783225200" and audit.actor_id == manager.pk
    assert audit.detail["new"]["unit"] == "KODOMO-YOJI"


def test_adding_an_overlapping_period_is_refused(manager_client, city):
    response = manager_client.post(
        reverse("console:directory_entry_new"),
        {"number": "41001", "unit": city["HGN-SHIMIN"].pk, "kind": "staff",
         "valid_from": "2025-01-01"},
        HTTP_ACCEPT_LANGUAGE="ja",
    )  # fmt: skip
    assert response.status_code == 200
    assert "この番号には、この期間の項目がすでにあります。" in response.content.decode()
    assert DirectoryEntry.objects.filter(number="41001").count() == 1


def test_a_change_closes_the_old_period_and_is_audited(manager_client, manager, city):
    entry = DirectoryEntry.objects.get(number="41001")
    page = manager_client.get(reverse("console:directory_entry", args=[entry.pk]))
    assert page.status_code == 200 and '<label for="id_from_day">' in page.content.decode()
    response = manager_client.post(
        reverse("console:directory_entry_change", args=[entry.pk]),
        {"unit": city["HGN-SHIMIN"].pk, "kind": "group", "label": "市民課 代表",
         "from_day": "2025-04-01"},
    )  # fmt: skip
    assert response.status_code == 302
    old, new = DirectoryEntry.objects.filter(number="41001").order_by("valid_from")
    assert (old.valid_from, old.valid_to, old.kind) == (dt.date(2024, 4, 1),
                                                        dt.date(2025, 3, 31), "staff")  # fmt: skip
    assert (new.valid_from, new.valid_to, new.kind, new.label) == (
        dt.date(2025, 4, 1), None, "group", "市民課 代表")  # fmt: skip
    assert response["Location"] == reverse("console:directory_entry", args=[new.pk])
    audit = AuditEntry.objects.get(action="directory.entry_change")
    assert audit.actor_id == manager.pk and audit.target == "directory:41001"
    assert audit.detail["before"]["valid_to"] is None
    assert audit.detail["new"]["valid_from"] == "2025-04-01" and not audit.detail["corrected"]
    detail = manager_client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "番号台帳の変更" in detail  # the number's audit history


def test_end_of_validity_keeps_the_entry(manager_client, city):
    entry = DirectoryEntry.objects.get(number="41001")
    response = manager_client.post(
        reverse("console:directory_entry_end", args=[entry.pk]), {"valid_to": "2025-03-31"}
    )
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.valid_to == dt.date(2025, 3, 31)
    audit = AuditEntry.objects.get(action="directory.entry_end")
    assert audit.detail["previous_valid_to"] is None and audit.detail["valid_to"] == "2025-03-31"
    assert "41001" not in _numbers(_page(manager_client, on="2025-04-01"))
    assert "41001" in _numbers(_page(manager_client, on="2025-03-31"))


def test_a_change_to_a_unit_not_in_force_is_refused(manager_client, city):
    # 保育課 ends on 2025-03-31; 41001 is open-ended, so the new period would outlive it
    entry = DirectoryEntry.objects.get(number="41001")
    before = AuditEntry.objects.count()
    response = manager_client.post(
        reverse("console:directory_entry_change", args=[entry.pk]),
        {"unit": city["KODOMO-HOIKU"].pk, "kind": "staff", "label": "x",
         "from_day": "2024-10-01"},
        HTTP_ACCEPT_LANGUAGE="ja",
    )  # fmt: skip
    assert response.status_code == 200
    assert "組織がこの期間全体で有効ではありません。" in response.content.decode()
    assert DirectoryEntry.objects.filter(number="41001").count() == 1
    assert AuditEntry.objects.count() == before
