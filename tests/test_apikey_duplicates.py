"""One account, counted once: a keyed digest of each key's secret and base URL refuses a key its owner already
stores, and folds the keys of different people that reach the same Fluence account into one listing."""

import base64
import hashlib
import hmac
import importlib
import io

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from vms import crypto, selectors, services
from vms.fields import SealedSecret
from vms.models import ApiKey, KeyShare
from vms.secret_digest import secret_digest, secret_digests

pytestmark = pytest.mark.django_db

SHARED = "sbx_dupe_team_account"  # one Fluence account, stored by several people
OTHER = "sbx_dupe_other_account"
OTHER_URL = "https://api.fluence.dev"  # allowlisted in the test settings; nothing is sent there
DUPLICATE_OF_PRODUCTION = "This key is already stored as “Production”."
FILL = importlib.import_module("vms.migrations.0009_fill_apikey_secret_digest")


def _add(owner, sandbox, *, label="Production", secret=SHARED, **options):
    return services.apikey_create(owner=owner, label=label, secret=secret, base_url=sandbox.url, **options)


# --- the digest ----------------------------------------------------------------------------------------


def test_the_digest_is_stable_and_depends_on_the_secret_and_the_base_url():
    digest = secret_digest(secret=SHARED, base_url="https://api.fluence.dev")
    assert len(digest) == 64 and int(digest, 16) >= 0  # SHA-256, hex
    assert secret_digest(secret=SHARED, base_url="https://api.fluence.dev") == digest
    assert (
        secret_digest(secret=SHARED, base_url="https://api.fluence.dev/") == digest
    )  # as the form cleans it
    assert secret_digest(secret=SHARED, base_url="https://api.fluence.dev/v2") != digest
    assert secret_digest(secret=OTHER, base_url="https://api.fluence.dev") != digest
    # Where the base URL ends and the secret begins is part of what is digested.
    assert secret_digest(secret="sbx_x12345678", base_url="http://a") != secret_digest(
        secret="x12345678", base_url="http://asbx_"
    )


def test_the_digest_is_keyed_by_a_key_of_its_own(settings):
    digest = secret_digest(secret=SHARED, base_url=OTHER_URL)
    message = len(OTHER_URL).to_bytes(4, "big") + OTHER_URL.encode() + SHARED.encode()
    encryption_key = base64.urlsafe_b64decode(settings.FIELD_ENCRYPTION_KEYS[0])
    # Not a bare hash anyone could recompute from a guessed key, nor an HMAC under the Fernet key itself.
    assert digest != hashlib.sha256(message).hexdigest()
    assert digest != hashlib.sha256(SHARED.encode()).hexdigest()
    assert digest != hmac.new(encryption_key, message, hashlib.sha256).hexdigest()
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old]
    newest = secret_digest(secret=SHARED, base_url=OTHER_URL)
    assert newest != digest
    # Lookups while a rotation is under way try the digest under every listed key, newest first.
    assert secret_digests(secret=SHARED, base_url=OTHER_URL) == [newest, digest]


def test_the_digest_never_holds_the_secret_and_is_never_shown(alice_client, user, sandbox, admin_client):
    api_key = _add(user, sandbox)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_digest FROM vms_apikey WHERE id = %s", [api_key.pk])
        (stored,) = cursor.fetchone()
    assert stored == secret_digest(secret=SHARED, base_url=sandbox.url)
    for part in (SHARED, SHARED[4:], SHARED[:-4], SHARED.encode().hex()):
        assert part not in stored
    for url in (reverse("vms:keys"), reverse("vms:list")):
        assert stored not in alice_client.get(url).content.decode()
    admin_page = admin_client.get(reverse("admin:vms_apikey_change", args=[api_key.pk]))
    assert admin_page.status_code == 200 and stored not in admin_page.content.decode()
    assert stored not in str(api_key)


def test_the_digest_does_not_depend_on_how_the_secret_is_encrypted(user, other_user, sandbox, settings):
    first = _add(user, sandbox)
    second = _add(other_user, sandbox, label="Team prod", verify=False)
    assert first.secret.token != second.secret.token  # Fernet tokens differ every time
    assert first.secret_digest == second.secret_digest != ""
    settings.FIELD_ENCRYPTION_KEYS = [*settings.FIELD_ENCRYPTION_KEYS, Fernet.generate_key().decode()]
    resealed = SealedSecret(crypto.current_fernet()._fernets[1].encrypt(SHARED.encode()).decode())
    assert resealed.reveal() == SHARED  # sealed under another (older) key: the digest is the same
    assert secret_digest(secret=resealed.reveal(), base_url=sandbox.url) == first.secret_digest


def test_a_missing_encryption_key_list_is_a_clear_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        secret_digest(secret=SHARED, base_url=OTHER_URL)


# --- adding a key the person already has --------------------------------------------------------------


def test_the_same_key_under_another_label_is_refused_before_fluence_is_asked(user, sandbox):
    _add(user, sandbox)
    sandbox.state.reset_counts()
    with pytest.raises(services.DuplicateApiKey) as refused:
        _add(user, sandbox, label="Prod again")
    assert refused.value.message_dict == {"secret": [DUPLICATE_OF_PRODUCTION]}
    assert sandbox.state.request_count() == 0
    assert ApiKey.objects.count() == 1


def test_the_same_key_on_another_api_and_another_persons_copy_are_accepted(user, other_user, sandbox):
    _add(user, sandbox)
    elsewhere = services.apikey_create(
        owner=user, label="Elsewhere", secret=SHARED, base_url=OTHER_URL, verify=False
    )
    theirs = _add(other_user, sandbox, label="Team prod")
    assert ApiKey.objects.count() == 3
    assert len({elsewhere.secret_digest, theirs.secret_digest}) == 2


def test_a_key_added_meanwhile_is_refused_when_the_second_is_saved(user, sandbox, monkeypatch):
    verify = services.apikey_verify

    def verify_while_another_tab_saves(**kwargs):
        detection = verify(**kwargs)
        ApiKey.objects.create(
            owner=user, label="Other tab", secret=SHARED, last_four=SHARED[-4:], base_url=sandbox.url,
            secret_digest=secret_digest(secret=SHARED, base_url=sandbox.url),
        )  # fmt: skip
        return detection

    monkeypatch.setattr(services, "apikey_verify", verify_while_another_tab_saves)
    with pytest.raises(services.DuplicateApiKey, match="already stored as “Other tab”"):
        _add(user, sandbox)
    assert list(ApiKey.objects.values_list("label", flat=True)) == ["Other tab"]


def test_the_add_form_shows_the_refusal_on_the_key_field(alice_client, user, sandbox, caplog):
    _add(user, sandbox)
    sandbox.state.reset_counts()
    caplog.set_level("WARNING", logger="fluence_portal.security")
    response = alice_client.post(
        reverse("vms:key_add"), {"label": "Prod again", "secret": SHARED, "base_url": sandbox.url}
    )
    assert response.status_code == 400
    assert f'<small class="field-error" id="id_secret-error">{DUPLICATE_OF_PRODUCTION}</small>' in (
        response.content.decode()
    )
    assert SHARED not in response.content.decode()
    assert sandbox.state.request_count() == 0
    assert ApiKey.objects.count() == 1
    # Pasting a key you already hold is a mistake, not someone trying keys against Fluence.
    assert not [record for record in caplog.records if record.name == "fluence_portal.security"]


def test_the_command_refuses_a_key_the_person_already_has(user, sandbox, monkeypatch):
    _add(user, sandbox)
    sandbox.state.reset_counts()
    for verify in ([], ["--no-verify"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(SHARED + "\n"))
        with pytest.raises(CommandError, match=DUPLICATE_OF_PRODUCTION):
            call_command(
                "apikey", "add", "--user", "alice", "--label", "CI", "--base-url", sandbox.url, *verify,
                stdout=io.StringIO(),
            )  # fmt: skip
    assert sandbox.state.request_count() == 0
    assert ApiKey.objects.count() == 1


# --- rotating the encryption keys ------------------------------------------------------------------


def test_rotation_moves_the_digests_to_the_new_key_and_refusals_hold_throughout(user, sandbox, settings):
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    api_key = _add(user, sandbox)
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    # Before the command runs, the stored digest is still the old key's: the key is refused all the same.
    with pytest.raises(services.DuplicateApiKey, match=DUPLICATE_OF_PRODUCTION):
        _add(user, sandbox, label="Prod again")
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "recomputed their secret digests" in out.getvalue()
    api_key.refresh_from_db()
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key dropped
    assert api_key.secret_digest == secret_digest(secret=SHARED, base_url=sandbox.url)
    with pytest.raises(services.DuplicateApiKey, match=DUPLICATE_OF_PRODUCTION):
        _add(user, sandbox, label="Prod again")


def test_a_failed_rotation_changes_no_digest(user, sandbox, settings):
    api_key = _add(user, sandbox)
    lost = Fernet(Fernet.generate_key()).encrypt(OTHER.encode()).decode()
    ApiKey.objects.create(
        owner=user, label="Lost", secret=SealedSecret(lost), last_four="ount", base_url=sandbox.url
    )
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())
    # The key that could be opened keeps its token and its digest: the command changes all or nothing.
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert (stored.secret, stored.secret_digest) == (api_key.secret, api_key.secret_digest)


# --- the data migration -----------------------------------------------------------------------------


def _apps_of_migration():
    return MigrationExecutor(connection).loader.project_state(("vms", FILL.__name__.rsplit(".", 1)[1])).apps


def test_the_data_migration_fills_the_digests_and_reports_what_it_cannot(user, other_user, sandbox):
    mine = _add(user, sandbox, verify=False)
    theirs = _add(other_user, sandbox, label="Team prod", verify=False)
    # Stored before the check existed: the same account twice for alice, and a key nobody can open.
    copy = ApiKey.objects.create(
        owner=user, label="Copy", secret=SHARED, last_four="ount", base_url=sandbox.url
    )
    elsewhere = Fernet(Fernet.generate_key()).encrypt(OTHER.encode()).decode()
    lost = ApiKey.objects.create(
        owner=user, label="Lost", secret=SealedSecret(elsewhere), last_four="ount", base_url=sandbox.url
    )
    ApiKey.objects.update(secret_digest="")
    assert FILL.Migration.operations[0].code is FILL.fill_secret_digests

    reported = []
    FILL.fill_secret_digests(_apps_of_migration(), None, report=reported.append)

    digests = dict(ApiKey.objects.values_list("pk", "secret_digest"))
    expected = secret_digest(secret=SHARED, base_url=sandbox.url)
    assert digests == {mine.pk: expected, theirs.pk: expected, copy.pk: expected, lost.pk: ""}
    (report,) = reported
    assert f"1 stored API key(s) cannot be decrypted with FIELD_ENCRYPTION_KEYS (ids {lost.pk})" in report
    assert f"stored more than once by the same person (key ids {mine.pk}, {copy.pk})" in report
    assert SHARED not in report and OTHER not in report and expected not in report


def test_the_data_migration_without_encryption_keys_reports_and_goes_on(user, sandbox, settings):
    _add(user, sandbox, verify=False)
    ApiKey.objects.update(secret_digest="")
    settings.FIELD_ENCRYPTION_KEYS = []
    reported = []
    FILL.fill_secret_digests(_apps_of_migration(), None, report=reported.append)
    assert "1 stored API key(s) keep an empty secret digest" in reported[0]
    assert ApiKey.objects.get().secret_digest == ""


def test_the_data_migration_leaves_filled_digests_alone_and_says_nothing(user, sandbox):
    _add(user, sandbox, verify=False)
    ApiKey.objects.update(
        secret_digest="f" * 64
    )  # e.g. written by a newer portal: not the migration's to redo
    reported = []
    FILL.fill_secret_digests(_apps_of_migration(), None, report=reported.append)
    assert reported == []
    assert ApiKey.objects.get().secret_digest == "f" * 64


# --- one account, listed once --------------------------------------------------------------------------


@pytest.fixture
def team(user, sandbox, django_user_model):
    """Alice owns "Production"; bob owns "Team prod", the same account, shared with alice's group."""
    sandbox.state.configure_account(SHARED, vm_count=5)
    sandbox.state.configure_account(OTHER, vm_count=2)
    bob = django_user_model.objects.create_user(username="bob", password="bob-password-1")
    group = Group.objects.create(name="team")
    user.groups.add(group)
    mine = _add(user, sandbox)
    other = _add(user, sandbox, label="Other", secret=OTHER)
    theirs = _add(bob, sandbox, label="Team prod")
    share = KeyShare.objects.create(api_key=theirs, group=group, role="viewer")
    sandbox.state.reset_counts()
    return mine, other, theirs, share, bob


def test_two_peoples_keys_to_one_account_are_listed_and_fetched_once(user, team, sandbox):
    mine, other, theirs, _, _ = team
    listing = selectors.vms_for_user(user=user)
    assert [result.account.key_id for result in listing.accounts] == [other.pk, mine.pk]
    production = listing.accounts[1]
    assert [account.key_id for account in production.folded] == [theirs.pk]
    assert production.notes == ("Also stored as “Team prod” by bob; its VMs are listed once.",)
    assert len(listing.rows) == 5 + 2
    assert {row.account.key_id for row in listing.rows} == {mine.pk, other.pk}
    assert sandbox.state.request_count(key=SHARED) == 1


def test_the_page_counts_and_totals_the_account_once(alice_client, team):
    _, _, _, share, _ = team
    response = alice_client.get(reverse("vms:list"))
    folded_table = response.context["table"]
    body = response.content.decode()
    assert "Also stored as “Team prod” by bob; its VMs are listed once." in body
    share.delete()  # alice's own keys only: what the page showed before bob's copy was shared
    alone = alice_client.get(reverse("vms:list")).context["table"]
    assert folded_table.total == alone.total == 7
    assert folded_table.spend == alone.spend
    assert [(count.label, count.count) for count in folded_table.status_counts] == [
        (count.label, count.count) for count in alone.status_counts
    ]


def test_the_person_who_sees_one_copy_sees_no_note(team, sandbox):
    _, _, theirs, _, bob = team
    (result,) = selectors.vms_for_user(user=bob).accounts
    assert result.account.key_id == theirs.pk and result.folded == () and result.notes == ()


def test_the_key_kept_is_the_one_with_the_highest_role(user, sandbox, django_user_model):
    """Viewer of bob's copy, operator of carol's: carol's is listed, and its VMs can be deleted."""
    sandbox.state.configure_account(SHARED, vm_count=3)
    viewers, operators = Group.objects.create(name="viewers"), Group.objects.create(name="operators")
    user.groups.add(viewers, operators)
    bob = django_user_model.objects.create_user(username="bob", password="bob-password-1")
    carol = django_user_model.objects.create_user(username="carol", password="carol-password-1")
    bobs = _add(bob, sandbox, label="Bob's")
    carols = _add(carol, sandbox, label="Carol's")
    KeyShare.objects.create(api_key=bobs, group=viewers, role="viewer")
    KeyShare.objects.create(api_key=carols, group=operators, role="operator")

    (result,) = selectors.vms_for_user(user=user).accounts
    assert result.account.key_id == carols.pk and result.account.can_delete
    assert result.notes == ("Also stored as “Bob's” by bob; its VMs are listed once.",)
    vm = sandbox.state.vms_for(SHARED)[0]
    selection = services.vms_select_for_deletion(user=user, values=[f"{carols.pk}:{vm['id']}"])
    assert [(row.vm.id, api_key.pk) for row, api_key in selection.selected] == [(vm["id"], carols.pk)]
    assert selection.skipped == ()

    # Her own copy wins over any share; between equal roles, the oldest key.
    mine = _add(user, sandbox, label="Mine", verify=False)
    (result,) = selectors.vms_for_user(user=user).accounts
    assert result.account.key_id == mine.pk
    assert result.notes == ("Also stored as “Carol's” by carol and “Bob's” by bob; its VMs are listed once.",)
    KeyShare.objects.filter(api_key=carols).update(role="viewer")
    assert [key.pk for key in selectors.apikeys_by_account([carols, bobs])[0]] == [bobs.pk, carols.pk]


def test_keys_without_a_digest_are_never_taken_for_one_account(user, sandbox):
    first = _add(user, sandbox, verify=False)
    second = _add(user, sandbox, label="Other", secret=OTHER, verify=False)
    ApiKey.objects.update(secret_digest="")
    groups = selectors.apikeys_by_account(list(ApiKey.objects.all()))
    assert sorted(len(group) for group in groups) == [1, 1]
    assert {result.account.key_id for result in selectors.vms_for_user(user=user).accounts} == {
        first.pk,
        second.pk,
    }


def test_the_keys_page_lists_every_key_and_marks_the_copies(alice_client, team):
    mine, other, theirs, _, _ = team
    body = alice_client.get(reverse("vms:keys")).content.decode()

    def row(key_id):
        start = body.index(f'data-key-id="{key_id}"')
        return body[start : body.index("</tr>", start)]

    assert "Same Fluence account as “Team prod” (bob)" in row(mine.pk)
    assert "Same Fluence account as “Production” (yours)" in row(theirs.pk)
    assert "Same Fluence account" not in row(other.pk)


def test_the_keys_page_shows_an_accounts_balance_on_each_of_its_keys(alice_client, user, sandbox, team):
    _, _, _, _, bob = team
    cloud = "sbx_b_dupe_cloud_account"
    sandbox.state.configure_account(cloud, vm_count=2, balance={"balance": "125.40", "usageDaysLeft": 11})
    mine = _add(user, sandbox, label="Cloud", secret=cloud)
    theirs = _add(bob, sandbox, label="Team cloud", secret=cloud)
    KeyShare.objects.create(api_key=theirs, group=Group.objects.get(name="team"), role="viewer")
    body = alice_client.get(reverse("vms:keys")).content.decode()
    for api_key in (mine, theirs):
        start = body.index(f'data-key-id="{api_key.pk}"')
        assert "balance 125.40 USD" in body[start : body.index("</tr>", start)]


def test_the_demo_data_can_be_made_again_after_a_demo_key_was_renamed(sandbox):
    from vms.demo_data import demo_data_create

    demo_data_create(sandbox_url=sandbox.url, password="demo-password-1")
    ApiKey.objects.filter(owner__username="alice", label="Production").update(label="Prod (renamed)")
    demo_data_create(sandbox_url=sandbox.url, password="demo-password-1")
    labels = ApiKey.objects.filter(owner__username="alice").values_list("label", flat=True)
    assert sorted(labels) == ["Cloud", "Production", "Staging"]
