import re

from django.urls import reverse


def _menu(html):
    nav = html.split('<nav aria-label="メインメニュー">')[1].split("</nav>")[0]
    return re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav)


def test_operator_menu_marks_the_current_section(operator_client):
    html = operator_client.get(reverse("console:search")).content.decode()
    links = _menu(html)
    urls = [u for u, _c, _l in links]
    assert reverse("console:home") in urls and reverse("console:health") in urls
    assert [(u, label) for u, cur, label in links if cur] == [(reverse("console:search"), "通話")]
    # manager-only sections are not offered to operators
    assert reverse("accounts:audit") not in urls
    assert reverse("accounts:operators") not in urls


def test_manager_menu_has_administration(manager_client):
    html = manager_client.get(reverse("console:home")).content.decode()
    urls = [u for u, _c, _l in _menu(html)]
    assert reverse("accounts:operators") in urls and reverse("accounts:audit") in urls
    current = [u for u, cur, _l in _menu(html) if cur]
    assert current == [reverse("console:home")]


def test_skip_link_language_switch_and_logout(operator_client):
    html = operator_client.get(reverse("console:home")).content.decode()
    assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html
    assert f'action="{reverse("console:set_language")}"' in html
    assert 'value="en" lang="en"' in html
    assert 'value="ja" lang="ja" aria-pressed="true" disabled' in html
    assert f'action="{reverse("logout")}"' in html


def test_switching_language_and_back(operator_client):
    response = operator_client.post(
        reverse("console:set_language"), {"language": "en", "next": reverse("console:search")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("console:search")
    html = operator_client.get(reverse("console:search")).content.decode()
    assert 'lang="en"' in html and "Call search" in html
    operator_client.post(reverse("console:set_language"), {"language": "ja", "next": "/"})
    assert "通話検索" in operator_client.get(reverse("console:search")).content.decode()


def test_every_form_field_has_a_label(operator_client):
    html = operator_client.get(reverse("console:search")).content.decode()
    ids = re.findall(r'<(?:input(?! type="hidden")|select)[^>]*\bid="([^"]+)"', html)
    assert len(ids) >= 14
    for ident in ids:
        assert f'<label for="{ident}">' in html, ident
