"""The password form next to single sign-on: kept for break-glass, or switched off everywhere."""

import pytest
from django.contrib.auth import authenticate

pytestmark = pytest.mark.django_db


def test_the_password_form_is_there_by_default(client):
    page = client.get("/accounts/login/").content.decode()

    assert 'name="password"' in page
    assert "Sign in with" not in page


def test_password_sign_in_works_by_default(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(user.pk)


def test_switched_off_the_form_is_hidden(client, settings):
    settings.LOCAL_LOGIN_ENABLED = False

    page = client.get("/accounts/login/").content.decode()

    assert 'name="password"' not in page
    assert "switched off" in page


def test_switched_off_a_password_post_is_refused(client, settings, user):
    settings.LOCAL_LOGIN_ENABLED = False

    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_switched_off_no_code_path_accepts_a_password(rf, settings, user):
    settings.LOCAL_LOGIN_ENABLED = False

    assert authenticate(rf.post("/admin/login/"), username="alice", password="alice-password-1") is None


def test_switched_off_the_page_offers_the_provider(client, settings):
    settings.LOCAL_LOGIN_ENABLED = False
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Company IdP"

    page = client.get("/accounts/login/").content.decode()

    assert "Sign in with Company IdP" in page
    assert 'name="password"' not in page
