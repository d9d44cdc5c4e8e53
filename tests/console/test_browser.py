"""End-to-end tests: Playwright drives Debian's Chromium (headless) against a live server.

They log in, search, open a call, play its encrypted Ogg/Opus recording and watch the
position move, request and approve an evidence export, get locked after the idle timeout
and get refused a page without the right. The run saves screenshots of the main pages into
docs/screenshots/ (1366x768, the city's office laptops).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.urls import reverse

from callscope.accounts.models import EvidenceRequest, Role
from callscope.store.models import AuditEntry

from ._factory import PASSWORD, make_user
from ._showcase import capture_samples, city_morning

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the
    # tests between browser steps are ordinary synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="ja-JP", base_url=live_server.url
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shot(page, name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def log_in(page, username: str) -> None:
    page.goto(reverse("login"))
    page.get_by_label("ユーザー名", exact=True).fill(username)
    page.get_by_label("パスワード", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_load_state()


def test_log_in_search_open_a_call_and_play_it(page, transactional_db):
    recorded = city_morning(seconds=20.0)
    capture_samples(drops=False)
    make_user("hojo-listen", can_listen=True)
    page.goto(reverse("login"))
    shot(page, "01-login")
    log_in(page, "hojo-listen")
    assert page.locator("h1").first.inner_text() == "ホーム"
    shot(page, "02-home")

    page.get_by_role("link", name="通話", exact=True).click()
    page.get_by_label("結果", exact=True).select_option("answered")  # htmx updates the results
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length > 0")
    page.wait_for_function(
        "[...document.querySelectorAll('#results .result')].every(e => e.textContent === '応答')"
    )
    assert "result=answered" in page.url  # the filters are in the address (hx-push-url)
    shot(page, "03-search")

    page.get_by_label("電話番号", exact=True).fill("090-8765-4321")
    page.get_by_role("button", name="検索", exact=True).click()
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 1")
    page.locator("#results tbody tr a").first.click()
    page.wait_for_url(re.compile(rf"/calls/{recorded.pk}/$"))
    assert "090-****" not in page.content()
    assert page.locator("#ladder g.msg").count() == 17

    # play: keyboard on the waveform (Space), then watch the position move
    page.locator("#waveform").focus()
    page.keyboard.press("Space")
    page.wait_for_function("document.getElementById('audio').currentTime > 1.0")
    position = float(page.locator("#player").get_attribute("data-position"))
    assert position > 0.5
    assert page.locator("#ladder-playhead").get_attribute("hidden") is None
    assert float(page.locator("#ladder-playhead").get_attribute("y1")) > 0
    page.locator("#balance").fill("-0.6")  # towards the caller
    page.wait_for_function("document.getElementById('audio').currentTime > 2.5")
    page.evaluate("document.getElementById('audio').pause()")
    shot(page, "04-call-detail", full_page=True)
    assert AuditEntry.objects.filter(action="playback", target=f"call:{recorded.pk}").count() == 1
    assert AuditEntry.objects.filter(action="call_view").count() >= 1


def test_capture_health_with_warning_banner(page, transactional_db):
    capture_samples(drops=True)
    make_user("kanri-health", Role.MANAGER)
    log_in(page, "kanri-health")
    page.goto(reverse("console:health"))
    banner = page.get_by_role("alert").first
    assert "eth1" in banner.inner_text()
    assert page.locator("svg.spark").count() == 2
    shot(page, "05-capture-health")


def test_refused_without_the_right(page, transactional_db):
    recorded = city_morning(seconds=3.0)
    make_user("hojo-plain")
    log_in(page, "hojo-plain")
    page.goto(reverse("console:call_detail", args=[recorded.pk]))
    assert page.locator("audio").count() == 0
    assert "聴取権限" in page.content()
    response = page.goto(reverse("console:call_audio", args=[recorded.pk]))
    assert response.status in {403, 404}
    response = page.goto(reverse("accounts:audit"))
    assert response.status == 403
    assert page.locator("h1").inner_text() == "権限がありません"
    shot(page, "06-refused")


def test_locked_after_the_idle_timeout(page, transactional_db, settings, monkeypatch):
    settings.SESSION_COOKIE_AGE = 2
    monkeypatch.setattr("callscope.accounts.sessions.idle_timeout", lambda: dt.timedelta(seconds=2))
    make_user("hojo-idle")
    log_in(page, "hojo-idle")
    assert page.locator("h1").first.inner_text() == "ホーム"
    page.wait_for_timeout(3500)
    page.goto(reverse("console:search"))
    assert "/accounts/login/" in page.url
    assert "操作がなかったため" in page.content() or "ロック" in page.content()
    assert AuditEntry.objects.filter(action="idle_lock", actor_name="hojo-idle").exists()


def test_evidence_requested_by_operator_and_approved_by_manager(browser, live_server,
                                                                transactional_db):  # fmt: skip
    recorded = city_morning(seconds=3.0)
    make_user("hojo-ev", can_listen=True)
    make_user("kanri-ev", Role.MANAGER)
    contexts = []

    def new_page():
        context = browser.new_context(viewport={"width": 1366, "height": 768},
                                      locale="ja-JP", base_url=live_server.url)  # fmt: skip
        contexts.append(context)
        return context.new_page()

    try:
        operator = new_page()
        log_in(operator, "hojo-ev")
        operator.goto(reverse("console:call_detail", args=[recorded.pk]))
        operator.get_by_role("link", name="証拠としての提供を申請する").click()
        operator.locator("#id_case_reference").fill("R6-不当要求-001")
        operator.locator("#id_reason").fill("大声での威圧と長時間の拘束（録音で確認）")
        shot(operator, "07-evidence-request")
        operator.locator("form button[type=submit]").last.click()
        operator.wait_for_load_state()
        evidence = EvidenceRequest.objects.get(call=recorded)
        assert evidence.status == EvidenceRequest.Status.REQUESTED

        manager = new_page()
        log_in(manager, "kanri-ev")
        manager.goto(reverse("accounts:evidence", args=[evidence.pk]))
        manager.get_by_role("button", name=re.compile("承認")).click()
        manager.wait_for_load_state()
        shot(manager, "08-evidence-approved")
        evidence.refresh_from_db()
        assert evidence.status == EvidenceRequest.Status.APPROVED
        assert evidence.hold is not None
    finally:
        for context in contexts:
            context.close()


def test_dashboard_renders_its_charts(page, transactional_db):
    from callscope.analytics.rebuild import rebuild

    city_morning(seconds=3.0)
    rebuild()
    make_user("kanri-dash", Role.MANAGER)
    log_in(page, "kanri-dash")
    page.get_by_role("link", name="ダッシュボード", exact=True).click()
    page.wait_for_load_state()
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    assert page.locator("h1").first.inner_text()
    shot(page, "09-dashboard")


DIRECTORY = """record,code,name,level,parent,number,kind,label,valid_from,valid_to
unit,W01,中央区役所,ward,,,,,2024-04-01,
unit,W01-SM,市民課,section,W01,,,,2024-04-01,
unit,W01-HK,保険年金課,section,W01,,,,2024-04-01,
unit,B01,こども家庭局,bureau,,,,,2024-04-01,
unit,B01-HS,保育所入所課,section,B01,,,,2024-04-01,2025-03-31
unit,B01-YJ,保育・幼児教育課,section,B01,,,,2025-04-01,
unit,B02,環境局,bureau,,,,,2024-04-01,
unit,B02-GM,ごみ収集課,section,B02,,,,2024-04-01,
number,W01-SM,,,,0782321111,group,市民課 代表,2024-04-01,
number,W01-SM,,,,41001,staff,市民課 窓口1,2024-04-01,
number,W01-SM,,,,41002,staff,市民課 窓口2,2024-04-01,
number,W01-HK,,,,0782321200,group,保険年金課 代表,2024-04-01,
number,W01-HK,,,,41201,staff,保険年金課 窓口,2024-04-01,
number,B01-HS,,,,0783225111,group,保育 代表,2024-04-01,2025-03-31
number,B01-YJ,,,,0783225111,group,保育 代表,2025-04-01,
number,B01-YJ,,,,0783225100,ivr,保育 音声案内,2025-04-01,
number,B02-GM,,,,0783336000,group,ごみ収集 代表,2024-04-01,
number,B02-GM,,,,0783336009,fax,ごみ収集 FAX,2024-04-01,
"""


def test_manager_searches_the_number_directory(page, transactional_db):
    from callscope.analytics import directory

    directory.import_directory(DIRECTORY.encode(), source="showcase.csv")
    make_user("kanri-dir", Role.MANAGER)
    log_in(page, "kanri-dir")
    page.get_by_role("link", name="番号台帳", exact=True).click()
    page.wait_for_load_state()
    page.get_by_label("基準日").fill("2025-06-01")
    page.get_by_label("番号または組織名").fill("保育")
    page.get_by_role("button", name="表示").click()
    page.wait_for_url(re.compile(r"q=%E4%BF%9D%E8%82%B2"))  # the filters are in the address
    rows = page.locator("table.directory tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    page.get_by_label("番号または組織名").fill("")
    page.get_by_role("button", name="表示").click()
    page.wait_for_function("document.querySelectorAll('table.directory tbody tr').length > 2")
    shot(page, "10-directory")
