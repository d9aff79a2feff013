"""The services check who acts, whoever calls them (a view, a command, a future API): a refusal changes
nothing, sends nothing to Fluence and records nothing."""

import pytest
from django.contrib.auth.models import Group, Permission

from tests.factories import deletion_rows, make_api_key, meta_for
from vms import selectors, services
from vms.models import ApiKey, KeyShare

pytestmark = pytest.mark.django_db

SECRET = "sbx_services_permissions_01"


@pytest.fixture
def owned_key(user, sandbox):
    return make_api_key(user, sandbox, secret=SECRET, label="Owned", vm_count=3, verify=False)


@pytest.fixture
def viewer(other_user, owned_key):
    group = Group.objects.create(name="watchers")
    other_user.groups.add(group)
    KeyShare.objects.create(api_key=owned_key, group=group, role="viewer")
    return other_user


def _a_vm(user):
    return selectors.vms_for_user(user=user).rows[0].vm


def test_a_viewer_cannot_delete_through_the_service(owned_key, viewer, sandbox):
    vm = _a_vm(viewer)
    sandbox.state.reset_counts()
    with pytest.raises(services.NotAllowed):
        services.vm_delete(user=viewer, api_key=owned_key, vm=vm, meta=meta_for(viewer))
    with pytest.raises(services.NotAllowed):
        services.vms_delete(user=viewer, api_key=owned_key, vms=[vm], meta=meta_for(viewer))
    assert sandbox.state.request_count(method="DELETE") == 0
    assert deletion_rows().count() == 0


def test_an_operator_may_delete_through_the_service(owned_key, viewer, sandbox):
    KeyShare.objects.filter(api_key=owned_key).update(role="operator")
    result = services.vm_delete(user=viewer, api_key=owned_key, vm=_a_vm(viewer), meta=meta_for(viewer))
    assert result.outcome == "succeeded"
    assert deletion_rows().filter(actor_username=viewer.get_username()).count() == 2


def test_a_stranger_cannot_delete_even_with_the_key_object(owned_key, user, django_user_model, sandbox):
    stranger = django_user_model.objects.create_user(username="stranger")
    with pytest.raises(services.NotAllowed):
        services.vm_delete(user=stranger, api_key=owned_key, vm=_a_vm(user), meta=meta_for(stranger))
    assert deletion_rows().count() == 0


def test_only_the_owner_renames_or_removes_a_key(owned_key, viewer):
    with pytest.raises(services.NotAllowed):
        services.apikey_rename(user=viewer, api_key=owned_key, label="Mine now")
    with pytest.raises(services.NotAllowed):
        services.apikey_delete(user=viewer, api_key=owned_key)
    owned_key.refresh_from_db()
    assert owned_key.label == "Owned"
    services.apikey_rename(user=owned_key.owner, api_key=owned_key, label="Renamed")
    services.apikey_delete(user=owned_key.owner, api_key=owned_key)
    assert not ApiKey.objects.exists()


def test_sharing_needs_the_owner_with_the_sharing_permission(owned_key, viewer):
    team = Group.objects.create(name="team")
    owner = owned_key.owner
    with pytest.raises(services.NotAllowed):  # the owner, without the permission
        services.keyshare_set(api_key=owned_key, group=team, role="operator", shared_by=owner)
    owner.user_permissions.add(Permission.objects.get(codename="share_apikey"))
    with pytest.raises(services.NotAllowed):  # someone else, however the key is shared with them
        services.keyshare_set(api_key=owned_key, group=team, role="operator", shared_by=viewer)
    share = KeyShare.objects.get(api_key=owned_key)
    with pytest.raises(services.NotAllowed):
        services.keyshare_delete(share=share, removed_by=viewer)
    assert KeyShare.objects.count() == 1

    owner = type(owner).objects.get(pk=owner.pk)  # permissions are cached per user object
    services.keyshare_set(api_key=owned_key, group=team, role="operator", shared_by=owner)
    services.keyshare_delete(share=share, removed_by=owner)
    assert list(KeyShare.objects.values_list("group__name", flat=True)) == ["team"]


def test_a_bulk_selection_made_before_the_role_was_taken_away_sends_nothing(owned_key, viewer, sandbox):
    KeyShare.objects.filter(api_key=owned_key).update(role="operator")
    rows = selectors.vms_for_user(user=viewer).rows
    selection = services.vms_select_for_deletion(
        user=viewer, values=[f"{row.account.key_id}:{row.vm.id}" for row in rows]
    )
    assert len(selection.selected) == 3
    KeyShare.objects.filter(api_key=owned_key).update(role="viewer")
    sandbox.state.reset_counts()

    outcomes = services.vms_delete_selected(user=viewer, selection=selection, meta=meta_for(viewer))

    assert [result.outcome for _, result in outcomes] == ["not_attempted"] * 3
    assert sandbox.state.request_count(method="DELETE") == 0
    assert deletion_rows().count() == 0


def test_a_bulk_reference_with_unicode_digits_is_skipped_not_a_crash(owned_key, viewer):
    selection = services.vms_select_for_deletion(user=viewer, values=["¹:0x" + "0" * 40])
    assert selection.skipped == (("¹:0x" + "0" * 40, "not a VM reference"),)


def test_a_bulk_reference_with_a_huge_key_number_is_skipped_not_a_crash(owned_key, viewer):
    reference = "9" * 5000 + ":0x" + "0" * 40  # int() of more than 4,300 digits raises
    selection = services.vms_select_for_deletion(user=viewer, values=[reference])
    assert selection.skipped == ((reference[:60], "not a VM reference"),)


def test_a_viewers_bulk_selection_selects_nothing(owned_key, viewer):
    rows = selectors.vms_for_user(user=viewer).rows
    selection = services.vms_select_for_deletion(
        user=viewer, values=[f"{row.account.key_id}:{row.vm.id}" for row in rows]
    )
    assert selection.selected == ()
    assert {reason for _, reason in selection.skipped} == {"you may not delete VMs of this account"}
