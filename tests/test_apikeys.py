"""API keys: stored encrypted, never shown, checked against Fluence before saving, managed per owner."""

import io
import logging
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, OperationalError, connection
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from tests.factories import OPS_KEY, deletion_rows
from vms import crypto, services
from vms.models import ApiKey

pytestmark = pytest.mark.django_db

SECRET = "sbx_alice_secret_key_7Q2x"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


def _raw_column(api_key_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM vms_apikey WHERE id = %s", [api_key_id])
        return cursor.fetchone()[0]


def _add(user, sandbox, secret=SECRET, label="Production"):
    return services.apikey_create(owner=user, label=label, secret=secret, base_url=sandbox.url)


def test_key_is_stored_encrypted_and_reveals_only_with_the_right_key(user, sandbox):
    api_key = _add(user, sandbox)
    raw = _raw_column(api_key.pk)
    assert SECRET not in raw
    assert SECRET[-4:] == api_key.last_four == "7Q2x"
    assert raw.startswith("gAAAAA")  # a Fernet token
    assert ApiKey.objects.get(pk=api_key.pk).secret.reveal() == SECRET
    assert SECRET not in repr(api_key.secret) and SECRET not in str(ApiKey.objects.get(pk=api_key.pk).secret)


def test_wrong_encryption_key_raises_instead_of_returning_ciphertext(user, sandbox, settings):
    api_key = _add(user, sandbox)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    loaded = ApiKey.objects.get(pk=api_key.pk)
    with pytest.raises(crypto.SecretDecryptionError) as excinfo:
        loaded.secret.reveal()
    assert SECRET not in str(excinfo.value)


def test_missing_encryption_keys_fail_loudly(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        crypto.encrypt("anything")
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS") as excinfo:
        crypto.encrypt("anything")
    assert "not-a-fernet-key" not in str(excinfo.value)


def test_rotation_re_encrypts_under_the_newest_key(user, sandbox, settings):
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    api_key = _add(user, sandbox)
    before = _raw_column(api_key.pk)
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 1 API key" in out.getvalue()
    after = _raw_column(api_key.pk)
    assert after != before
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    assert ApiKey.objects.get(pk=api_key.pk).secret.reveal() == SECRET


def test_rotation_changes_nothing_when_a_key_cannot_be_opened(user, sandbox, settings):
    api_key = _add(user, sandbox)
    before = _raw_column(api_key.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())
    assert _raw_column(api_key.pk) == before


# --- the pages ------------------------------------------------------------------------------------


def _post_key(client, sandbox, **overrides):
    data = {"label": "Production", "secret": SECRET, "base_url": sandbox.url, **overrides}
    return client.post(reverse("vms:key_add"), data)


def test_adding_a_key_tries_it_once_and_never_shows_it_again(alice_client, user, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    response = _post_key(alice_client, sandbox)
    assert response.status_code == 302
    assert sandbox.state.request_count(method="GET", path="/vms/v2") == 1
    api_key = ApiKey.objects.get(owner=user)
    assert api_key.label == "Production" and api_key.base_url == sandbox.url
    page = alice_client.get(reverse("vms:keys"))
    body = page.content.decode()
    assert "Production" in body and "…7Q2x" in body
    assert SECRET not in body
    assert SECRET not in caplog.text
    assert SECRET not in alice_client.get(reverse("vms:list")).content.decode()


def test_a_refused_key_gets_a_clear_message_and_is_not_saved(alice_client, sandbox):
    response = _post_key(alice_client, sandbox, secret="not-a-sandbox-key-XYZ1")
    assert response.status_code == 400
    assert "Fluence refused this key" in response.content.decode()
    assert "not-a-sandbox-key-XYZ1" not in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_a_revoked_key_shows_fluence_reason(alice_client, sandbox):
    response = _post_key(alice_client, sandbox, secret="sbx_demo_revoked_0001")
    assert response.status_code == 400
    assert "API key revoked" in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_a_base_url_outside_the_allowlist_is_refused_without_any_call(alice_client, sandbox):
    response = _post_key(alice_client, sandbox, base_url="http://169.254.169.254")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert sandbox.state.request_count() == 0
    assert ApiKey.objects.count() == 0
    with pytest.raises(Exception, match="allowed Fluence API URLs"):
        services.apikey_create(owner=None, label="x", secret=SECRET, base_url="http://10.0.0.1")


def test_a_key_whose_address_left_the_allowlist_is_never_called(alice_client, api_key, sandbox, settings):
    settings.FLUENCE_API_URLS = ["https://api.fluence.dev"]
    before = sandbox.state.request_count()
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "no longer allows" in body
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    response = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]), {"confirm": vm["vmName"]}, **HX
    )
    assert response.status_code == 404  # the VM cannot be looked up through a disallowed address
    assert sandbox.state.request_count() == before
    assert deletion_rows().count() == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secret": ""}, "This field is required"),
        ({"secret": "short"}, "8 to 512 printable characters"),
        ({"secret": "has spaces in it"}, "8 to 512 printable characters"),
        ({"secret": "sbx_line\nbreak_inside"}, "8 to 512 printable characters"),
        ({"label": "   "}, "This field is required"),
        ({"label": "x" * 81}, "at most 80 characters"),
    ],
)
def test_a_malformed_form_gets_a_clear_message_and_changes_nothing(alice_client, sandbox, overrides, message):
    response = _post_key(alice_client, sandbox, **overrides)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert sandbox.state.request_count() == 0
    assert ApiKey.objects.count() == 0


def test_a_sandbox_that_is_down_gets_a_clear_message_and_nothing_is_saved(alice_client, settings):
    settings.FLUENCE_API_URLS = ["http://127.0.0.1:9"]  # nothing listens on the discard port
    response = alice_client.post(
        reverse("vms:key_add"), {"label": "Down", "secret": SECRET, "base_url": "http://127.0.0.1:9"}
    )
    assert response.status_code == 400
    assert "The key was not saved" in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_duplicate_label_is_refused(alice_client, user, sandbox):
    _add(user, sandbox)
    response = _post_key(alice_client, sandbox, secret="sbx_another_key_0000")
    assert response.status_code == 400
    assert "already have a key with this label" in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_a_key_saved_twice_at_once_gets_a_message_not_an_error(alice_client, user, sandbox, monkeypatch):
    original = ApiKey.objects.create

    def racing_create(**kwargs):
        original(**kwargs)  # the other request won the race
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(ApiKey.objects, "create", racing_create)
    response = alice_client.post(
        reverse("vms:key_add"), {"label": "Twice", "secret": "sbx_saved_twice_01", "base_url": sandbox.url}
    )
    assert response.status_code == 400
    assert "already have a key with this label" in response.content.decode()


def test_a_key_refused_on_add_is_a_security_event(alice_client, sandbox, caplog):
    caplog.set_level("WARNING", logger="fluence_portal.security")
    alice_client.post(
        reverse("vms:key_add"), {"label": "Guess", "secret": "sbx_demo_revoked_0001", "base_url": sandbox.url}
    )
    events = [record.getMessage() for record in caplog.records if record.name == "fluence_portal.security"]
    assert any("api key refused by Fluence on add: user=alice" in event for event in events)
    assert not any("sbx_demo_revoked_0001" in event for event in events)


def test_rename_and_remove(alice_client, user, sandbox):
    api_key = _add(user, sandbox)
    response = alice_client.post(reverse("vms:key_rename", args=[api_key.pk]), {"label": "Prod EU"})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.label == "Prod EU"
    assert api_key.secret.reveal() == SECRET
    confirm = alice_client.get(reverse("vms:key_remove", args=[api_key.pk]))
    assert "keep running and billing on Fluence" in confirm.content.decode()
    assert ApiKey.objects.count() == 1  # a GET removes nothing
    response = alice_client.post(reverse("vms:key_remove", args=[api_key.pk]))
    assert response.status_code == 302
    assert ApiKey.objects.count() == 0


def test_someone_elses_key_is_a_404_for_every_key_page(client, user, other_user, sandbox):
    api_key = _add(user, sandbox)
    client.force_login(other_user)
    for name in ("vms:key_rename", "vms:key_remove"):
        assert client.get(reverse(name, args=[api_key.pk])).status_code == 404
        assert client.post(reverse(name, args=[api_key.pk]), {"label": "stolen"}).status_code == 404
    assert "Production" not in client.get(reverse("vms:keys")).content.decode()
    api_key.refresh_from_db()
    assert api_key.label == "Production"


def test_anonymous_people_are_sent_to_sign_in(client):
    for name in ("vms:list", "vms:keys", "vms:key_add"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


# --- when each key was last used -------------------------------------------------------------------


def test_listing_records_when_each_key_was_last_used(alice_client, user, sandbox):
    key = services.apikey_create(
        owner=user, label="Quiet", secret="sbx_last_used_key_1", base_url=sandbox.url, verify=False
    )
    assert key.last_used_at is None
    alice_client.get(reverse("vms:list"))
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_last_used_bookkeeping_never_fails_the_page_or_writes_on_every_refresh(
    alice_client, api_key, monkeypatch, django_assert_max_num_queries
):
    alice_client.get(reverse("vms:list"))  # the first refresh records the use
    writes = []
    real_update = QuerySet.update
    monkeypatch.setattr(QuerySet, "update", lambda self, **kwargs: writes.append(kwargs) or 0)
    for _ in range(5):
        alice_client.get(reverse("vms:list"), **HX)
    assert writes == []  # not again within five minutes

    # Six minutes on, with the shared cache's marker gone: due again, and the write fails.
    real_update(ApiKey.objects.filter(pk=api_key.pk), last_used_at=timezone.now() - timedelta(minutes=6))
    cache.delete(f"apikey:last-used:{api_key.pk}")

    def locked(self, **kwargs):
        raise OperationalError("database table is locked")

    monkeypatch.setattr(QuerySet, "update", locked)
    assert alice_client.get(reverse("vms:list")).status_code == 200
    assert cache.get(f"apikey:last-used:{api_key.pk}") is not None  # it was due, and tried


def test_a_key_whose_row_shows_a_recent_use_costs_no_bookkeeping_at_all(alice_client, api_key):
    alice_client.get(reverse("vms:list"))  # the first refresh records the use
    marker = f"apikey:last-used:{api_key.pk}"
    cache.delete(marker)  # as in another process, or once the marker has expired
    alice_client.get(reverse("vms:list"), **HX)
    assert cache.get(marker) is None  # the key's row said "used 0 s ago": not even the cache was asked


# --- the provisioning command ---------------------------------------------------------------------


def test_command_adds_lists_and_removes_reading_the_secret_from_stdin(user, sandbox, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    out = io.StringIO()
    call_command("apikey", "add", "--user", "alice", "--label", "CI", "--base-url", sandbox.url, stdout=out)
    assert "…7Q2x" in out.getvalue() and SECRET not in out.getvalue()
    assert ApiKey.objects.get(owner=user).secret.reveal() == SECRET
    out = io.StringIO()
    call_command("apikey", "list", stdout=out)
    assert "alice\tCI\t…7Q2x" in out.getvalue() and SECRET not in out.getvalue()
    call_command("apikey", "remove", "--user", "alice", "--label", "CI", stdout=io.StringIO())
    assert ApiKey.objects.count() == 0


def test_command_refuses_a_bad_key_and_an_empty_stdin(user, sandbox, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("sbx_demo_revoked_0001\n"))
    with pytest.raises(CommandError, match="revoked"):
        call_command("apikey", "add", "--user", "alice", "--label", "CI", "--base-url", sandbox.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="No API key on standard input"):
        call_command("apikey", "add", "--user", "alice", "--label", "CI", "--base-url", sandbox.url)
    assert ApiKey.objects.count() == 0
