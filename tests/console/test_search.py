import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from callscope.console.search import (
    SORTS,
    SearchForm,
    filter_calls,
    find_calls,
    implied_start,
    page_of,
)
from callscope.store.models import AuditEntry, Call, OrgUnit

from ._factory import make_call

T0 = dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC)  # 09:00 JST


def _calls(n, **kw):
    return [make_call(T0 + dt.timedelta(minutes=i), **kw) for i in range(n)]


def _walk(qs, sort, size):
    """Every page forwards; returns the ids in order and the cursors seen."""
    ids, cursor, pages = [], None, []
    while True:
        page = page_of(qs, sort, after=cursor, size=size)
        ids += [c.pk for c in page.rows]
        pages.append(page)
        if page.next_cursor is None:
            return ids, pages
        cursor = page.next_cursor


@pytest.mark.django_db
@pytest.mark.parametrize("sort", list(SORTS))
def test_keyset_pages_cover_every_row_once_in_order(sort):
    # equal sort values (ties) across page boundaries must neither repeat nor skip rows
    for i in range(23):
        make_call(T0 + dt.timedelta(minutes=i // 3), talk_seconds=float(i % 4),
                  setup_seconds=None if i % 5 == 0 else float(i % 3))  # fmt: skip
    qs = Call.objects.all()
    ids, pages = _walk(qs, sort, size=5)
    key = SORTS[sort]
    expected = [c.pk for c in key.annotate(qs).order_by(*key.ordering())]
    assert ids == expected
    assert len(pages) == 5
    # walking back from the last page gives the previous pages again
    back = page_of(qs, sort, before=pages[-1].prev_cursor, size=5)
    assert [c.pk for c in back.rows] == [c.pk for c in pages[-2].rows]


@pytest.mark.django_db
def test_first_page_has_no_previous_and_last_has_no_next():
    _calls(3)
    page = page_of(Call.objects.all(), "-started", size=5)
    assert page.prev_cursor is None and page.next_cursor is None
    assert [c.started_at for c in page.rows] == sorted((c.started_at for c in page.rows),
                                                       reverse=True)  # fmt: skip


def _form(**data):
    form = SearchForm(data)
    assert form.is_valid(), form.errors
    return form.cleaned_data


@pytest.mark.django_db
def test_filters():
    a = make_call(T0, result="busy", talk_seconds=None, answered_at=None, setup_seconds=2.0)
    b = make_call(T0 + dt.timedelta(hours=1), direction="outbound", talk_seconds=300.0,
                  dtmf=[{"digit": "1", "direction": "caller_to_callee",
                         "at": "2024-05-01T01:00:10.000000Z", "method": "rfc4733"}])  # fmt: skip
    c = make_call(T0 + dt.timedelta(hours=2), caller={"number": "+81 90 1234 5678", "uri": "",
                  "display_name": None}, setup_seconds=40.0)  # fmt: skip

    def found(**data):
        data.setdefault("start", "2024-01-01T00:00")
        return set(filter_calls(_form(**data)).values_list("pk", flat=True))

    assert found() == {a.pk, b.pk, c.pk}
    assert found(result="busy") == {a.pk}
    assert found(direction="outbound") == {b.pk}
    assert found(dtmf="yes") == {b.pk}
    assert found(dtmf="no") == {a.pk, c.pk}
    assert found(talk_min="100") == {b.pk}
    assert found(wait_min="30") == {c.pk}
    assert found(wait_max="3") == {a.pk}
    # JST times: 10:00 JST is 01:00 UTC
    assert found(start="2024-05-01T10:00", end="2024-05-01T10:30") == {b.pk}
    # any spelling of the number finds the call through its pseudonym
    assert found(number="090-1234-5678") == {c.pk}
    assert found(number="09012345678") == {c.pk}
    assert found(number="0311112222") == set()


@pytest.mark.django_db
def test_filter_by_section_and_side():
    ward = OrgUnit.objects.create(
        code="W1", name="中央区役所", level="ward", valid_from="2024-04-01"
    )
    sec = OrgUnit.objects.create(code="S1", name="保険年金課", level="section", parent=ward,
                                 top=ward, valid_from="2024-04-01")  # fmt: skip
    a, b = _calls(2)
    Call.objects.filter(pk=a.pk).update(callee_unit=sec)
    Call.objects.filter(pk=b.pk).update(caller_unit=sec)

    def found(**data):
        return set(filter_calls(_form(**data)).values_list("pk", flat=True))

    assert found(unit=str(sec.pk)) == {a.pk, b.pk}
    assert found(unit=str(sec.pk), side="callee") == {a.pk}
    assert found(unit=str(ward.pk), side="caller") == {b.pk}  # the ward includes its sections
    # the dashboards' matrix drill-down: both sides at once, dates as from/to
    Call.objects.filter(pk=b.pk).update(callee_unit=ward)
    assert found(caller_unit=str(sec.pk), callee_unit=str(ward.pk)) == {b.pk}
    assert (
        found(caller_unit=str(sec.pk), callee_unit=str(ward.pk), **{"from": "2024-05-02"}) == set()
    )
    assert found(caller_unit=str(ward.pk), **{"from": "2024-05-01", "to": "2024-05-02"}) == {b.pk}


@pytest.mark.django_db
def test_recording_filter():
    from ._factory import attach_recording

    a, b = _calls(2)
    attach_recording(a, seconds=1)
    period = {"start": "2024-01-01"}
    assert set(filter_calls(_form(recording="yes", **period)).values_list("pk", flat=True)) == {
        a.pk
    }
    assert set(filter_calls(_form(recording="no", **period)).values_list("pk", flat=True)) == {b.pk}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data", [{"dtmf": "yes"}, {"recording": "no"}, {"wait_min": "60"}, {"sort": "-talk"}]
)
def test_scanning_searches_without_a_period_cover_the_last_days(data):
    now = dt.datetime.now(dt.UTC)
    recent = make_call(now - dt.timedelta(days=3), talk_seconds=10.0, setup_seconds=70.0,
                       dtmf=[{"digit": "1", "direction": "caller_to_callee",
                              "at": "2024-05-01T01:00:10.000000Z", "method": "rfc4733"}],
                       recording={"status": "no_media"})  # fmt: skip
    old = make_call(now - dt.timedelta(days=60), setup_seconds=70.0,
                    dtmf=[{"digit": "1", "direction": "caller_to_callee",
                           "at": "2024-05-01T01:00:10.000000Z", "method": "rfc4733"}])  # fmt: skip
    ids = set(filter_calls(_form(**data)).values_list("pk", flat=True))
    assert recent.pk in ids and old.pk not in ids
    assert implied_start(_form(**data)) is not None
    # indexed filters keep the whole history
    assert implied_start(_form(result="answered")) is None
    assert implied_start(_form(start="2000-01-01", **data)) is None


def test_reversed_bounds_are_refused(db):
    form = SearchForm({"talk_min": "100", "talk_max": "10"})
    assert not form.is_valid()
    assert "talk_max" in form.errors


def test_search_page_in_japanese_with_masked_numbers(operator_client):
    _calls(3)
    response = operator_client.get(reverse("console:search"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "通話検索" in html
    assert "078-***-5678" in html
    assert "0783215678" not in html and "078-321-5678" not in html
    assert AuditEntry.objects.filter(action="search").count() == 1
    assert not AuditEntry.objects.filter(action="number_view").exists()


def test_manager_sees_full_numbers_and_that_is_audited(manager_client):
    _calls(2)
    html = manager_client.get(reverse("console:search")).content.decode()
    assert "078-321-5678" in html
    assert AuditEntry.objects.filter(action="number_view").count() == 1


def test_htmx_request_gets_only_the_results_and_pages_link_on(operator_client):
    _calls(60)
    response = operator_client.get(reverse("console:search"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html
    assert html.count('class="result result-answered"') == 50
    assert 'rel="next"' in html and 'rel="prev"' not in html
    assert "HX-Request" in response["Vary"]
    next_href = html.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = operator_client.get(next_href, HTTP_HX_REQUEST="true").content.decode()
    assert second.count('class="result result-answered"') == 10
    assert 'rel="prev"' in second and 'rel="next"' not in second
    # paging is not a new search: one audit entry
    assert AuditEntry.objects.filter(action="search").count() == 1


def test_sortable_columns_mark_the_order(operator_client):
    now = dt.datetime.now(dt.UTC)
    make_call(now - dt.timedelta(days=1), talk_seconds=10.0)
    make_call(now - dt.timedelta(days=2), talk_seconds=99.0)
    old = make_call(now - dt.timedelta(days=90))
    html = operator_client.get(reverse("console:search"), {"sort": "-talk"}).content.decode()
    assert 'aria-sort="descending"' in html
    assert "sort=talk" in html  # clicking again sorts ascending
    assert html.index("1:39") < html.index("0:10")
    # a duration sort without a period covers the last 31 days, and says so
    assert f"/calls/{old.pk}/" not in html
    assert "31" in html
    html = operator_client.get(
        reverse("console:search"), {"sort": "-talk", "start": "2000-01-01T00:00"}
    ).content.decode()
    assert f"/calls/{old.pk}/" in html


def test_bad_cursor_is_404(operator_client):
    assert operator_client.get(reverse("console:search"), {"after": "x_y"}).status_code == 404


def test_invalid_filters_render_errors(operator_client):
    response = operator_client.get(reverse("console:search"), {"talk_min": "-5"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_csv_export_is_audited_and_masked(operator_client):
    _calls(3)
    response = operator_client.get(reverse("console:export", args=["csv"]), {"result": "answered"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="calls-')
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "開始日時（日本時間）"
    assert len(rows) == 4
    assert rows[1][3] == "078-***-5678"
    assert rows[1][0] == "2024-05-01 09:02:00"  # newest first, JST
    entry = AuditEntry.objects.get(action="export")
    assert entry.detail["rows"] == 3 and entry.detail["format"] == "csv"
    assert entry.detail["filters"] == {"result": "answered"}


def test_excel_export(manager_client):
    _calls(2)
    response = manager_client.get(reverse("console:export", args=["xlsx"]))
    book = load_workbook(io.BytesIO(response.content))
    sheet = book.active
    values = list(sheet.values)
    assert len(values) == 3
    assert values[1][3] == "078-321-5678"  # the manager has the full-number right


def test_formula_like_cells_are_neutralised(manager_client):
    make_call(T0, caller={"number": "=1+2", "uri": "", "display_name": None})
    rows = list(csv.reader(io.StringIO(
        manager_client.get(reverse("console:export", args=["csv"])).content.decode("utf-8-sig")
    )))  # fmt: skip
    assert rows[1][3].startswith("'")


def test_unknown_export_format_is_404(operator_client):
    assert operator_client.get(reverse("console:export", args=["pdf"])).status_code == 404


def test_search_needs_login(client, db):
    response = client.get(reverse("console:search"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["-started", "started", "-talk", "wait"])
@pytest.mark.parametrize("side", ["", "caller", "callee"])
def test_unit_branches_page_exactly_like_one_query(sort, side):
    ward = OrgUnit.objects.create(code="W", name="区", level="ward", valid_from="2024-04-01")
    sections = [
        OrgUnit.objects.create(code=f"S{i}", name=f"課{i}", level="section", parent=ward,
                               top=ward, valid_from="2024-04-01")
        for i in range(3)
    ]  # fmt: skip
    for i in range(40):
        call = make_call(T0 + dt.timedelta(minutes=i // 2), talk_seconds=float(i % 5),
                         setup_seconds=float(i % 3))  # fmt: skip
        Call.objects.filter(pk=call.pk).update(
            caller_unit=sections[i % 3] if i % 4 else None, callee_unit=sections[(i + 1) % 3]
        )
    data = _form(unit=str(ward.pk), side=side, start="2024-01-01")
    query = find_calls(data)
    assert len(query.branches) == (4 if side else 8)  # the ward itself and its 3 sections
    ids, pages = _walk(query, sort, size=7)
    key = SORTS[sort]
    expected = [c.pk for c in key.annotate(filter_calls(data)).order_by(*key.ordering())]
    assert ids == expected and len(ids) == len(set(ids))
    assert 20 <= len(ids) <= 40
    back = page_of(query, sort, before=pages[-1].prev_cursor, size=7)
    assert [c.pk for c in back.rows] == [c.pk for c in pages[-2].rows]
