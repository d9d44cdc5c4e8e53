"""Dashboards, exports and the monthly report: Japanese, populated, read from rollups."""

import datetime as dt
import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from callscope.accounts.models import Role, User
from callscope.analytics import monthly_report, queries, rollups
from callscope.store.models import AuditEntry
from tests.analytics.test_rollups import make_city, row_of, save

T0 = dt.datetime(2025, 4, 7, 0, 30, tzinfo=dt.UTC)  # Monday 09:30 JST


def leg(i, caller, callee, direction, *, answered=True, minutes=0, callee_class=""):
    start = T0 + dt.timedelta(days=i % 20, minutes=minutes + i)
    return row_of(
        call_id=f"d{i}", conversation_id=f"d{i}", started_at=start,
        ringing_at=start + dt.timedelta(seconds=1),
        answered_at=start + dt.timedelta(seconds=12) if answered else None,
        ended_at=start + dt.timedelta(seconds=192 if answered else 40),
        result="answered" if answered else "cancelled", ended_by="caller",
        caller_number=caller, callee_number=callee, direction=direction,
        callee_class=callee_class, hold_seconds=None, transferred=False,
    )  # fmt: skip


@pytest.fixture
def city_calls(db):
    units = make_city()
    legs = []
    for i in range(60):
        legs.append(leg(i, f"0901234{i:04d}", "5111", "inbound", answered=i % 6 != 0))
    for i in range(60, 75):
        legs.append(leg(i, "41001", "5112", "internal"))  # ward 市民課 -> HQ 保育課
    for i in range(75, 80):
        legs.append(leg(i, "41001", "0661234567", "outbound"))
    for row in legs:
        (call,) = save([row])
        rollups.apply_call(call)
    return units


@pytest.fixture
def manager(db):
    user = User.objects.create_user("kanri", password="correct horse battery")
    user.role = Role.MANAGER
    user.must_change_password = False
    user.save()
    return user


@pytest.fixture
def browser(client, manager):
    client.force_login(manager)
    return client


PERIOD = {"start": "2025-04-01", "end": "2025-04-30"}


def test_split_period_into_months_and_days():
    months, days = queries.split_period(dt.date(2025, 3, 15), dt.date(2025, 6, 10))
    assert months == [dt.date(2025, 4, 1), dt.date(2025, 5, 1)]
    assert days == [(dt.date(2025, 3, 15), dt.date(2025, 3, 31)),
                    (dt.date(2025, 6, 1), dt.date(2025, 6, 10))]  # fmt: skip


def test_dashboards_need_a_login(client, db):
    response = client.get(reverse("console:dashboards"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_overview_in_japanese_with_data(browser, city_calls):
    html = browser.get(reverse("console:dashboards"), PERIOD).content.decode()
    assert "着信数" in html and "応答率" in html and "曜日・時間帯別の通話数" in html
    assert "/static/plotly/plotly.min.js" in html
    assert "https://" not in html and "http://" not in html  # no CDN
    assert '"trend"' in html and '"heatmap"' in html
    s = queries.summary(queries.Filters(dt.date(2025, 4, 1), dt.date(2025, 4, 30)))
    assert s["offered"] == 60 and s["answered"] == 50 and s["abandoned"] == 10


def test_before_after_comparison(browser, city_calls):
    html = browser.get(reverse("console:dashboards"), {**PERIOD, "marker": "2025-04-17"})
    text = html.content.decode()
    assert "変更前後の比較" in text and "変更前" in text and '"marker": "2025-04-17"' in text


def test_sections_page_ranks_units(browser, city_calls):
    html = browser.get(reverse("console:dashboard_units"), PERIOD).content.decode()
    assert "通話数の多い課" in html and "課別の放棄率" in html and "(%%)" not in html
    assert "保育課" in html and "こども家庭局" in html


def test_distributions_page(browser, city_calls):
    html = browser.get(reverse("console:dashboard_distributions"), PERIOD).content.decode()
    assert "待ち時間（応答した通話）" in html and "通話時間" in html
    assert "10-15" in html  # the 12-second waits


def test_matrix_with_drill_down_to_the_calls(browser, city_calls):
    shimin, hoiku = city_calls["shimin"], city_calls["hoiku"]
    params = {**PERIOD, "level": "section", "unit": shimin.top_id}
    html = browser.get(reverse("console:dashboard_matrix"), params).content.decode()
    assert "内線通話マトリクス" in html
    link = (f"/calls/?caller_unit={shimin.pk}&amp;callee_unit={hoiku.pk}"
            "&amp;from=2025-04-01&amp;to=2025-04-30")  # fmt: skip
    assert link in html
    rows = queries.matrix(queries.Filters(dt.date(2025, 4, 1), dt.date(2025, 4, 30),
                                          flows=queries.INTERNAL, level="top"))  # fmt: skip
    assert rows[0]["calls"] == 15 and rows[0]["caller"] == "東灘区役所"
    city_wide = browser.get(reverse("console:dashboard_matrix"), {**PERIOD, "level": "section"})
    assert "東灘区役所 市民課" not in city_wide.content.decode()  # sections need a unit filter


@pytest.mark.parametrize("table", ["summary", "trend", "heatmap", "units", "wait", "talk",
                                   "matrix", "peak", "compare"])  # fmt: skip
def test_every_table_exports_as_csv_and_excel(browser, city_calls, table):
    url = reverse("console:dashboard_export", args=[table, "csv"])
    response = browser.get(url, {**PERIOD, "marker": "2025-04-10"})
    assert response.status_code == 200
    assert response.content.startswith("\ufeff".encode())
    text = response.content.decode("utf-8-sig")
    assert text.splitlines()[0]  # a header in Japanese
    xlsx = browser.get(reverse("console:dashboard_export", args=[table, "xlsx"]), PERIOD)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.max_row >= 1
    assert AuditEntry.objects.filter(action="dashboard.export").count() == 2


def test_units_export_content(browser, city_calls):
    url = reverse("console:dashboard_export", args=["units", "csv"])
    text = browser.get(url, PERIOD).content.decode("utf-8-sig")
    header, first = text.splitlines()[:2]
    assert header.startswith("局・区,組織,着信数,応答,放棄呼")
    assert first.startswith("こども家庭局,保育課,60,50,10,")


def test_unknown_export_is_404(browser, city_calls):
    for table, fmt in (("calls", "csv"), ("units", "pdf")):
        url = reverse("console:dashboard_export", args=[table, fmt])
        assert browser.get(url).status_code == 404


def test_monthly_report_pdf_embeds_the_japanese_font(browser, city_calls):
    response = browser.get(reverse("console:dashboard_report"), {"month": "2025-04"})
    assert response.status_code == 200
    pdf = response.content
    assert pdf.startswith(b"%PDF")
    assert b"IPAexGothic" in pdf and b"/FontFile2" in pdf  # TrueType embedded (subset)
    assert monthly_report.font_path().name == "ipaexg.ttf"
