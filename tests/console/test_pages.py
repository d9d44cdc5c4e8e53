import pytest
from django.test import Client
from django.urls import reverse

from callscope.accounts.models import Role, User


@pytest.fixture
def manager(db):
    user = User.objects.create_user("kanri", password="correct horse battery")
    user.role = Role.MANAGER
    user.must_change_password = False
    user.save()
    return user


def test_login_page_is_japanese_by_default(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'lang="ja"' in html
    assert "ログイン" in html
    assert "パスワード" in html
    assert "htmx" in html  # the copy shipped inside django-htmx, served locally
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside


def test_home_requires_login(client, db):
    response = client.get(reverse("console:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_manager_logs_in_and_sees_home_in_japanese(client, manager):
    response = client.post(
        reverse("login"), {"username": "kanri", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    page = client.get(reverse("console:home"))
    assert page.status_code == 200
    assert "ホーム" in page.content.decode()
    assert "管理責任者" in page.content.decode()


def test_one_time_password_must_be_changed_first(client, manager):
    manager.must_change_password = True
    manager.save()
    client.force_login(manager)
    response = client.get(reverse("console:home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("password_change")
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "correct horse battery",
            "new_password1": "桜の花が咲く春の神戸市役所",
            "new_password2": "桜の花が咲く春の神戸市役所",
        },
    )
    assert response.status_code == 302
    manager.refresh_from_db()
    assert manager.must_change_password is False
    assert client.get(reverse("console:home")).status_code == 200


def test_clients_outside_the_allowed_networks_are_refused(db):
    outside = Client(REMOTE_ADDR="203.0.113.9")
    response = outside.get(reverse("login"))
    assert response.status_code == 403
    inside = Client(REMOTE_ADDR="192.168.10.20")
    assert inside.get(reverse("login")).status_code == 200


def test_healthz(client, db):
    assert client.get(reverse("console:healthz")).json() == {"status": "ok"}
