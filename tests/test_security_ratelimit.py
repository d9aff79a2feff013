"""Sign-in and key-adding are rate limited per person and per address; refusals change nothing."""

import logging
import math
from unittest import mock

import pytest
from django.contrib.auth import authenticate
from django.db.models import Q
from django.test import RequestFactory
from django.urls import reverse

from vms import ratelimit
from vms.models import ApiKey

PASSWORD = "alice-password-1"
WRONG_PASSWORD = "not-alices-password-9"
KEY = "sbx_ratelimit_key_0001"


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.LOGIN_RATE_LIMIT = (3, 300)
    settings.KEY_ADD_RATE_LIMIT = (2, 600)


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _sign_in(client, username="alice", password=WRONG_PASSWORD, ip="198.51.100.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, follow=False
    )


# --- signing in ------------------------------------------------------------------------------------


def test_failed_sign_ins_beyond_the_limit_are_refused_with_429_and_no_password_check(client, user):
    with mock.patch("django.contrib.auth.forms.authenticate", wraps=authenticate) as authenticating:
        for _ in range(3):
            assert _sign_in(client).status_code == 200  # the form again, with its error
    assert authenticating.call_count == 3  # (the patch does see sign-ins)

    # Every backend is reached through authenticate(); it must not be called at all.
    with mock.patch("django.contrib.auth.forms.authenticate", wraps=authenticate) as authenticating:
        refused = _sign_in(client, password=PASSWORD)  # even the right password

    assert refused.status_code == 429
    assert authenticating.call_count == 0
    retry_after = int(refused["Retry-After"])
    assert 0 < retry_after <= 300
    assert f"Too many sign-in attempts; try again in {_minutes(retry_after)}." in refused.text
    assert "_auth_user_id" not in client.session


def test_the_limit_counts_per_address_across_usernames(client, user):
    for name in ("alice", "bob", "carol"):
        _sign_in(client, username=name)

    assert _sign_in(client, username="dave").status_code == 429
    # Another address still gets to try.
    assert _sign_in(client, username="alice", password=PASSWORD, ip="203.0.113.9").status_code == 302


def test_the_limit_counts_per_username_across_addresses(client, user):
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        _sign_in(client, ip=ip)

    assert _sign_in(client, username="ALICE ", password=PASSWORD, ip="198.51.100.4").status_code == 429


@pytest.mark.parametrize(
    ("username", "guessed_as", "signs_in_as"),
    [
        ("alice", "alice", "\uff41\uff4c\uff49\uff43\uff45"),  # full-width letters
        ("alice", "\uff41lice", "alice"),
        ("fiona", "fiona", "\ufb01ona"),  # the fi ligature (casefold() alone already folds this one)
        ("ijsbrand", "ijsbrand", "\u0133sbrand"),  # the ij ligature, which casefold() leaves alone
        ("ijsbrand", "\u0133sbrand", "ijsbrand"),
        ("jos\u00e9", "jose\u0301", "jos\u00e9"),  # stored composed (NFC), guessed with a combining accent
        ("jos\u00e9", "jos\u00e9", "jose\u0301"),
    ],
    ids=[
        "full-width",
        "full-width-first",
        "fi-ligature",
        "ij-ligature",
        "ij-ligature-first",
        "combining",
        "combining-last",
    ],
)
def test_look_alike_spellings_of_a_username_share_its_limit(
    client, django_user_model, username, guessed_as, signs_in_as
):
    django_user_model.objects.create_user(username=username, password=PASSWORD)
    # Both spellings reach the account: the form normalises the username before the backend sees it.
    assert _sign_in(client, username=guessed_as, password=PASSWORD, ip="203.0.113.1").status_code == 302
    assert _sign_in(client, username=signs_in_as, password=PASSWORD, ip="203.0.113.2").status_code == 302
    client.logout()

    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        assert _sign_in(client, username=guessed_as, ip=ip).status_code == 200

    refused = _sign_in(client, username=signs_in_as, password=PASSWORD, ip="198.51.100.4")

    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session


def test_any_spelling_that_reaches_the_account_shares_its_limit(client, user):
    from django.contrib.auth.models import UserManager

    user.email = "alice@example.com"
    user.save()

    def username_or_email(manager, name):
        # A user manager some projects use: sign in with the username or the email address.
        return manager.get(Q(username=name) | Q(email__iexact=name))

    with mock.patch.object(UserManager, "get_by_natural_key", username_or_email):
        assert _sign_in(client, username="alice@example.com", password=PASSWORD).status_code == 302
        client.logout()
        for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            assert _sign_in(client, username="alice", ip=ip).status_code == 200

        refused = _sign_in(client, username="ALICE@example.com", password=PASSWORD, ip="198.51.100.4")

    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("username", ["ali\x00ce", "a" * 151, "   "], ids=["nul", "too-long", "blank"])
def test_usernames_the_form_refuses_are_counted_without_looking_up_an_account(
    user, django_assert_num_queries, username
):
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="198.51.100.7")

    # No lookup: PostgreSQL would fail on the NUL, and the form refuses all three before any backend.
    with django_assert_num_queries(0):
        verdict = ratelimit.login_attempt(request=request, username=username)

    assert verdict.allowed and len(verdict.counters) == 2  # the username and the address


def test_a_successful_sign_in_does_not_count_as_an_attempt(client, user):
    for _ in range(5):
        assert _sign_in(client, password=PASSWORD).status_code == 302
        client.logout()

    assert _sign_in(client).status_code == 200


def test_failures_and_refusals_are_security_events_without_the_password(client, user, caplog):
    caplog.set_level(logging.INFO, logger="fluence_portal.security")
    for _ in range(4):
        _sign_in(client)

    events = [record for record in caplog.records if record.name == "fluence_portal.security"]
    messages = [record.getMessage() for record in events]
    assert sum("sign-in failed" in message for message in messages) == 3
    assert any("sign-in refused, too many attempts" in message for message in messages)
    assert all("username='alice'" in message and "198.51.100.7" in message for message in messages)
    assert all(record.levelno == logging.WARNING for record in events)
    assert WRONG_PASSWORD not in caplog.text


def test_the_admin_signs_in_through_the_rate_limited_form(client):
    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/admin/"


# --- adding API keys -------------------------------------------------------------------------------------


def _add_key(client, sandbox, secret=KEY, label="Production", ip="198.51.100.7"):
    data = {"label": label, "secret": secret, "base_url": sandbox.url}
    return client.post(reverse("vms:key_add"), data, REMOTE_ADDR=ip)


def test_adding_keys_beyond_the_limit_is_refused_without_calling_fluence(alice_client, sandbox, user):
    assert _add_key(alice_client, sandbox, secret="not-a-sandbox-key-1").status_code == 400
    assert _add_key(alice_client, sandbox, secret="not-a-sandbox-key-2").status_code == 400
    calls = sandbox.state.request_count()

    refused = _add_key(alice_client, sandbox)

    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 0 < retry_after <= 600
    message = f"Too many API keys tried; try again in {_minutes(retry_after)}. Nothing was sent to Fluence."
    assert message in refused.text
    assert sandbox.state.request_count() == calls
    assert not ApiKey.objects.filter(owner=user).exists()
    assert KEY not in refused.text


def test_the_key_limit_is_per_user_and_per_address(alice_client, other_user, client, sandbox):
    _add_key(alice_client, sandbox, label="One", secret="sbx_ratelimit_key_0002")
    _add_key(alice_client, sandbox, label="Two", secret="sbx_ratelimit_key_0003")
    # Alice from elsewhere: her own count is spent.
    assert _add_key(alice_client, sandbox, label="Three", ip="203.0.113.1").status_code == 429

    client.force_login(other_user)
    # Someone else from Alice's address: the address is spent.
    assert _add_key(client, sandbox, label="Mine").status_code == 429
    # Someone else from another address may.
    assert _add_key(client, sandbox, label="Mine", ip="203.0.113.2").status_code == 302


# --- the counters ----------------------------------------------------------------------------------------


def test_counts_live_in_the_shared_cache_and_windows_expire(settings):
    from django.core.cache import cache

    verdicts = [ratelimit.attempt("test", ["ip:192.0.2.1"], (2, 60)) for _ in range(3)]

    assert [verdict.allowed for verdict in verdicts] == [True, True, False]
    assert cache.get(verdicts[0].counters[0]) == 3
    with mock.patch("vms.ratelimit.time.time", return_value=10**10):  # a later window
        assert ratelimit.attempt("test", ["ip:192.0.2.1"], (2, 60)).allowed


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "10.0.0.2"),  # no proxy trusted: the header is ignored
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # the forged left part is ignored
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.9", "203.0.113.5"),
        (1, "", "10.0.0.2"),
        (1, "not-an-address", "unknown"),
    ],
)
def test_the_client_address_trusts_only_our_own_proxies(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_HOPS = hops
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    assert ratelimit.client_ip(request) == expected
