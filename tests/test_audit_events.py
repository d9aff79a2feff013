"""The audit trail of every write: key events written by the key services, who reads them, the page's action
and target filters and the export's action column."""

import csv
import io
import re

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import ALICE_KEY, MALLORY_KEY, make_api_key, meta_for
from vms import services
from vms.audit import audit_events_for_user
from vms.models import ApiKey, DeletionEvent, KeyShare

pytestmark = pytest.mark.django_db
Action = DeletionEvent.Action
AUDIT = "/audit/"
EXPORT = "/audit/export.csv"


def events(action=None):
    rows = DeletionEvent.objects.order_by("pk")
    return list(rows.filter(action=action) if action else rows)


def _with_permission(person, codename):
    person.user_permissions.add(Permission.objects.get(codename=codename))
    return type(person).objects.get(pk=person.pk)  # fresh: no stale permission cache


@pytest.fixture
def sharer(user):
    return _with_permission(user, "share_apikey")


@pytest.fixture
def team(django_user_model):
    group = Group.objects.create(name="ops")
    member = django_user_model.objects.create_user(username="otto", password="otto-password-1")
    member.groups.add(group)
    return group, member


def csv_rows(response):
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def lines(response) -> list[tuple[str, str]]:
    """(action, outcome) of each line of the audit page, top to bottom."""
    return [
        (action, outcome)
        for outcome, action in re.findall(
            r'<tr class="audit-row" data-correlation-id="[0-9a-f-]+" '
            r'data-outcome="([^"]*)" data-action="([^"]*)"',
            response.content.decode(),
        )
    ]


# --- each key service writes its event ------------------------------------------------------------------


def test_adding_a_key_through_the_form_records_who_from_where_and_never_the_secret(
    alice_client, user, sandbox
):
    response = alice_client.post(
        "/keys/add/",
        {"label": "Production", "secret": ALICE_KEY, "base_url": sandbox.url, "generation": "auto"},
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="Browser 1",
    )
    assert response.status_code == 302
    (row,) = events()
    assert (row.action, row.kind, row.outcome) == (Action.KEY_ADD, "event", "succeeded")
    assert (row.actor_username, row.actor_id, row.client_ip, row.user_agent) == (
        "alice",
        str(user.pk),
        "203.0.113.9",
        "Browser 1",
    )
    assert row.request_id and row.key_label == "Production" and row.key_last_four == ALICE_KEY[-4:]
    assert row.details == {"label": "Production", "generation": "baseline"}
    stored = DeletionEvent.objects.filter(pk=row.pk).values().get()
    assert not any(ALICE_KEY in str(value) for value in stored.values())


def test_a_refused_key_records_nothing(alice_client, sandbox):
    alice_client.post("/keys/add/", {"label": "x", "secret": "short", "base_url": sandbox.url})
    assert events() == []


def test_renaming_a_key_records_before_and_after_and_a_same_name_records_nothing(
    alice_client, user, alice_key
):
    assert alice_client.post(f"/keys/{alice_key.pk}/rename/", {"label": "Prod EU"}).status_code == 302
    (row,) = events(Action.KEY_RENAME)
    assert row.details == {"before": {"label": "Production"}, "after": {"label": "Prod EU"}}
    assert row.key_label == "Prod EU" and row.actor_username == "alice" and row.request_id
    alice_client.post(f"/keys/{alice_key.pk}/rename/", {"label": "Prod EU"})
    alice_client.post(f"/keys/{alice_key.pk}/rename/", {"label": ""})  # bad input changes nothing
    assert len(events(Action.KEY_RENAME)) == 1


def test_someone_else_cannot_rename_and_nothing_is_recorded(other_user, alice_key):
    with pytest.raises(services.NotAllowed):
        services.apikey_rename(user=other_user, api_key=alice_key, label="Mine now")
    assert events(Action.KEY_RENAME) == []


def test_removing_a_key_records_it_and_the_row_outlives_the_key(alice_client, sharer, alice_key, team):
    group, _ = team
    services.keyshare_set(api_key=alice_key, group=group, role="viewer", shared_by=sharer)
    assert alice_client.post(f"/keys/{alice_key.pk}/remove/").status_code == 302
    assert not ApiKey.objects.exists()
    (row,) = events(Action.KEY_REMOVE)
    assert row.key_id == str(alice_key.pk) and row.key_label == "Production"
    assert row.details == {"label": "Production", "shared_with": ["ops"]}
    # Alice still reads the removal (her own action) on the audit page.
    assert (Action.KEY_REMOVE.value, "succeeded") in lines(alice_client.get(AUDIT))


def test_sharing_changing_the_role_and_unsharing_each_record_an_event(sharer, alice_key, team):
    group, _ = team
    share, _ = services.keyshare_set(
        api_key=alice_key, group=group, role="viewer", shared_by=sharer, meta=meta_for(sharer)
    )
    services.keyshare_set(api_key=alice_key, group=group, role="viewer", shared_by=sharer)  # no change
    services.keyshare_set(api_key=alice_key, group=group, role="operator", shared_by=sharer)
    services.keyshare_delete(share=KeyShare.objects.get(pk=share.pk), removed_by=sharer)
    assert [(row.action, row.details) for row in events()[1:]] == [
        (Action.KEY_SHARE, {"group": "ops", "role": "viewer"}),
        (Action.KEY_ROLE, {"group": "ops", "before": {"role": "viewer"}, "after": {"role": "operator"}}),
        (Action.KEY_UNSHARE, {"group": "ops", "role": "operator"}),
    ]


def test_sharing_without_the_permission_records_nothing(user, alice_key, team):
    group, _ = team
    with pytest.raises(services.NotAllowed):
        services.keyshare_set(api_key=alice_key, group=group, role="viewer", shared_by=user)
    assert events(Action.KEY_SHARE) == []


def test_a_generation_switch_is_recorded_once_by_the_portal(user, sandbox):
    api_key = services.apikey_create(
        owner=user,
        label="Moved",
        secret="sbx_b_retired_path_01",
        base_url=sandbox.url,
        generation="a",
        verify=False,
    )
    services._apikey_switch_generation(key_id=api_key.pk, generation="b")
    services._apikey_switch_generation(key_id=api_key.pk, generation="b")  # another process, later
    (row,) = events(Action.KEY_GENERATION)
    assert row.details == {"before": {"generation": "a"}, "after": {"generation": "b"}}
    assert row.actor_username == "portal" and row.actor_id == "" and row.key_label == "Moved"


def test_rotating_the_encryption_keys_is_recorded_and_a_failed_rotation_is_not(user, sandbox, settings):
    make_api_key(user, sandbox, secret=ALICE_KEY)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    (row,) = events(Action.KEYS_ROTATE)
    assert row.details == {"keys_reencrypted": 1} and row.actor_username == "rotate_encryption_keys"
    assert row.source == "command" and row.key_id == ""
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # no key opens any more
    with pytest.raises(CommandError):
        call_command("rotate_encryption_keys", stdout=io.StringIO())
    assert len(events(Action.KEYS_ROTATE)) == 1


# --- who reads which rows ----------------------------------------------------------------------------


@pytest.fixture
def shared_world(sharer, alice_key, team, other_user, sandbox):
    """Alice's key shared with otto's group as operator; a deletion by otto; mallory's own key."""
    group, member = team
    services.keyshare_set(api_key=alice_key, group=group, role="operator", shared_by=sharer)
    deletion = DeletionEvent.objects.create(
        kind="intent",
        action=Action.VM_DELETE,
        correlation_id="00000000-0000-0000-0000-000000000001",
        created_at=alice_key.created_at,
        actor_username="otto",
        actor_id=str(member.pk),
        key_id=str(alice_key.pk),
        key_label=alice_key.label,
        key_last_four=alice_key.last_four,
        vm_id="0x0000000000000000000000000000000000000001",
    )
    theirs = make_api_key(other_user, sandbox, secret=MALLORY_KEY, label="Mine")
    return {"member": member, "deletion": deletion, "theirs": theirs}


def test_the_owner_reads_their_keys_events_and_the_vm_events(user, shared_world):
    seen = {(row.action, row.key_label) for row in audit_events_for_user(user=user)}
    assert seen == {
        (Action.KEY_ADD, "Production"),
        (Action.KEY_SHARE, "Production"),
        (Action.VM_DELETE, "Production"),
    }


def test_an_operator_of_a_shared_key_reads_its_vm_events_but_not_its_key_events(shared_world):
    seen = {row.action for row in audit_events_for_user(user=shared_world["member"])}
    assert seen == {Action.VM_DELETE}


def test_a_viewer_reads_no_key_events_either(shared_world, sharer, alice_key):
    group = Group.objects.get(name="ops")
    services.keyshare_set(api_key=alice_key, group=group, role="viewer", shared_by=sharer)
    assert {row.action for row in audit_events_for_user(user=shared_world["member"])} == {Action.VM_DELETE}


def test_a_stranger_reads_none_of_them(other_user, shared_world):
    seen = {(row.action, row.key_label) for row in audit_events_for_user(user=other_user)}
    assert seen == {(Action.KEY_ADD, "Mine")}


@pytest.mark.parametrize("codename", ["view_all_audit", "view_all_deletions"])
def test_the_audit_permission_old_name_or_new_reads_every_event(django_user_model, shared_world, codename):
    auditor = _with_permission(django_user_model.objects.create_user(username="audrey"), codename)
    assert audit_events_for_user(user=auditor).count() == DeletionEvent.objects.count() == 4


# --- the page's filters and the export ----------------------------------------------------------------


def test_the_page_names_each_action_and_what_it_changed(alice_client, alice_key):
    alice_client.post(f"/keys/{alice_key.pk}/rename/", {"label": "Prod EU"})
    body = alice_client.get(AUDIT).content.decode()
    assert lines(alice_client.get(AUDIT)) == [("key_rename", "succeeded"), ("key_add", "succeeded")]
    assert "Key renamed" in body and "label: Production → Prod EU" in body


def test_the_action_and_target_filters_narrow_the_page_and_the_export(alice_client, shared_world):
    assert [action for action, _ in lines(alice_client.get(AUDIT, {"action": "key_share"}))] == ["key_share"]
    assert [action for action, _ in lines(alice_client.get(AUDIT, {"target": "vm"}))] == ["vm_delete"]
    assert {action for action, _ in lines(alice_client.get(AUDIT, {"target": "key"}))} == {
        "key_add",
        "key_share",
    }
    exported = csv_rows(alice_client.get(EXPORT, {"target": "key"}))
    assert sorted(row["action"] for row in exported) == ["key_add", "key_share"]
    share = next(row for row in exported if row["action"] == "key_share")
    assert share["details"] == '{"group":"ops","role":"operator"}' and share["kind"] == "event"


@pytest.mark.parametrize(
    ("query", "note"),
    [({"action": "vm_explode"}, "Unknown action filter"), ({"target": "x"}, "Unknown target filter")],
)
def test_a_bad_action_or_target_is_a_note_and_ignored(alice_client, shared_world, query, note):
    response = alice_client.get(AUDIT, query)
    assert response.status_code == 200 and note in response.content.decode()
    assert len(lines(response)) == 3


def test_the_export_carries_the_action_of_every_row(alice_client, shared_world):
    assert sorted(row["action"] for row in csv_rows(alice_client.get(EXPORT))) == [
        "key_add",
        "key_share",
        "vm_delete",
    ]
