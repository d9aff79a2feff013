"""Who sees and does what: the access table, tested from every view against the real sandbox.

The cast: ops-anna owns "Production" (shared with the group "viewers" as viewer and "operators" as
operator) and "Private" (shared with nobody); vic is in "viewers", otto in "operators", mallory owns a key of
her own and is in no group. Everything a person may not see is a 404; what they see but may not do is a 403.
"""

import uuid
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import deletion_rows
from vms import selectors, services
from vms.models import ApiKey, DeletionEvent, KeyShare

pytestmark = pytest.mark.django_db

SHARED = "sbx_access_team_prod"  # last four "prod"
PRIVATE = "sbx_access_anna_only"  # last four "only"
STRANGER = "sbx_access_mallory_mine"  # last four "mine"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}
ROLES = ["anonymous", "owner", "viewer", "operator", "stranger"]


@pytest.fixture
def world(sandbox, django_user_model):
    sandbox.state.configure_account(SHARED, vm_count=6, include_example=True)
    sandbox.state.configure_account(PRIVATE, vm_count=3)
    sandbox.state.configure_account(STRANGER, vm_count=2)
    sandbox.state.deletion_delay = 60  # deleted VMs stay listed ("deleting") for the whole test

    def person(username, *groups):
        user = django_user_model.objects.create_user(username=username, password=f"{username}-password-1")
        user.groups.add(*groups)
        return user

    ops = Group.objects.create(name="ops")
    ops.permissions.add(Permission.objects.get(codename="share_apikey"))
    viewers = Group.objects.create(name="viewers")
    operators = Group.objects.create(name="operators")
    anna = person("ops-anna", ops)
    mallory = person("mallory")
    shared_key = services.apikey_create(owner=anna, label="Production", secret=SHARED, base_url=sandbox.url)
    private_key = services.apikey_create(owner=anna, label="Private", secret=PRIVATE, base_url=sandbox.url)
    stranger_key = services.apikey_create(owner=mallory, label="Mine", secret=STRANGER, base_url=sandbox.url)
    viewer_share = KeyShare.objects.create(api_key=shared_key, group=viewers, role="viewer")
    operator_share = KeyShare.objects.create(api_key=shared_key, group=operators, role="operator")
    sandbox.state.reset_counts()
    return SimpleNamespace(
        users={
            "anonymous": None,
            "owner": anna,
            "viewer": person("vic", viewers),
            "operator": person("otto", operators),
            "stranger": mallory,
        },
        groups={"ops": ops, "viewers": viewers, "operators": operators},
        shared_key=shared_key,
        private_key=private_key,
        stranger_key=stranger_key,
        viewer_share=viewer_share,
        operator_share=operator_share,
        sandbox=sandbox,
    )


def client_as(world, role: str) -> Client:
    client = Client()
    if world.users[role] is not None:
        client.force_login(world.users[role])
    return client


def vm_of(world, secret: str, index: int = 0) -> dict:
    return world.sandbox.state.vms_for(secret)[index]


def deletes(world) -> int:
    return world.sandbox.state.request_count(method="DELETE")


def detail_url(key, vm) -> str:
    return reverse("vms:detail", args=[key.pk, vm["id"]])


def delete_url(key, vm) -> str:
    return reverse("vms:delete", args=[key.pk, vm["id"]])


def assert_sent_to_sign_in(response, htmx: bool = False) -> None:
    if htmx:
        assert response.status_code == 200 and response["HX-Redirect"].startswith(reverse("login"))
    else:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def row_html(body: str, vm_id: str) -> str:
    start = body.index(f'data-vm-id="{vm_id}"')
    return body[start : body.index("</tr>", start)]


# --- the VM list, whole and as the htmx partial -------------------------------------------------------

SEES_SHARED = {"owner": True, "viewer": True, "operator": True, "stranger": False}
MAY_DELETE = {"owner": True, "viewer": False, "operator": True, "stranger": False}


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "partial"])
@pytest.mark.parametrize("role", ROLES)
def test_list_shows_exactly_the_visible_accounts(world, role, htmx):
    shared_vm, private_vm = vm_of(world, SHARED, 1), vm_of(world, PRIVATE)
    stranger_vm = vm_of(world, STRANGER)
    response = client_as(world, role).get(reverse("vms:list"), **(HX if htmx else {}))
    if role == "anonymous":
        assert_sent_to_sign_in(response, htmx)
        return
    assert response.status_code == 200
    body = response.content.decode()
    assert (f'data-vm-id="{shared_vm["id"]}"' in body) is SEES_SHARED[role]
    assert (f'data-vm-id="{private_vm["id"]}"' in body) is (role == "owner")
    assert (f'data-vm-id="{stranger_vm["id"]}"' in body) is (role == "stranger")
    if not SEES_SHARED[role]:
        return
    row = row_html(body, shared_vm["id"])
    # Whose account: your own key by its label, somebody else's with its owner.
    assert "Production" in row
    assert ("· ops-anna" in row) is (role != "owner")
    # The delete link and the bulk checkbox only where deleting is allowed.
    assert ("Delete" in row) is MAY_DELETE[role]
    assert (f'value="{world.shared_key.pk}:{shared_vm["id"]}"' in row) is MAY_DELETE[role]
    assert deletes(world) == 0


# --- the detail page and its status partial ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status", "delete_button"),
    [("owner", 200, True), ("viewer", 200, False), ("operator", 200, True), ("stranger", 404, False)],
)
def test_detail_page(world, role, status, delete_button):
    vm = vm_of(world, SHARED, 1)
    response = client_as(world, role).get(detail_url(world.shared_key, vm))
    assert response.status_code == status
    body = response.content.decode()
    assert (vm["id"] in body) is (status == 200)
    assert ('id="delete-vm-button"' in body) is delete_button
    assert SHARED not in body  # the secret, never


def test_detail_page_anonymous(world):
    assert_sent_to_sign_in(
        client_as(world, "anonymous").get(detail_url(world.shared_key, vm_of(world, SHARED)))
    )


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("viewer", 200), ("operator", 200), ("stranger", 404)]
)
def test_detail_status_partial(world, role, status):
    vm = vm_of(world, SHARED, 1)
    response = client_as(world, role).get(
        reverse("vms:detail_status", args=[world.shared_key.pk, vm["id"]]), **HX
    )
    assert response.status_code == status
    assert (vm["id"] in response.content.decode()) is (status == 200)


def test_detail_status_partial_anonymous_redirects_the_whole_page(world):
    vm = vm_of(world, SHARED, 1)
    response = client_as(world, "anonymous").get(
        reverse("vms:detail_status", args=[world.shared_key.pk, vm["id"]]), **HX
    )
    assert_sent_to_sign_in(response, htmx=True)


# --- deleting one VM: the dialog, then the POST ---------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status", "text"),
    [
        ("anonymous", 302, None),
        ("owner", 200, "type the VM's name"),
        ("viewer", 403, "You may not delete"),
        ("operator", 200, "owned by ops-anna"),
        ("stranger", 404, None),
    ],
)
def test_delete_dialog(world, role, status, text):
    response = client_as(world, role).get(delete_url(world.shared_key, vm_of(world, SHARED)), **HX)
    if role == "anonymous":
        assert_sent_to_sign_in(response, htmx=True)
    else:
        assert response.status_code == status
    if text:
        assert text in response.content.decode()
    assert deletes(world) == 0 and deletion_rows().count() == 0


@pytest.mark.parametrize(
    ("role", "status", "upstream_deletes"),
    [
        ("anonymous", 302, 0),
        ("owner", 302, 1),
        ("viewer", 403, 0),
        ("operator", 302, 1),
        ("stranger", 404, 0),
    ],
)
def test_delete_post(world, role, status, upstream_deletes):
    vm = vm_of(world, SHARED, 1)
    response = client_as(world, role).post(delete_url(world.shared_key, vm), {"confirm": vm["vmName"]})
    assert response.status_code == status
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))
    assert deletes(world) == upstream_deletes
    if not upstream_deletes:
        assert deletion_rows().count() == 0
        return
    actor = world.users[role]
    intent, outcome = deletion_rows().order_by("pk")
    assert outcome.outcome == "succeeded"
    for row in (intent, outcome):
        assert (row.actor_username, row.actor_id) == (actor.get_username(), str(actor.pk))
        assert (row.key_id, row.key_owner_username) == (str(world.shared_key.pk), "ops-anna")


def test_an_operator_deletes_through_htmx_and_the_audit_names_them(world):
    vm = vm_of(world, SHARED, 2)
    client = client_as(world, "operator")
    response = client.post(delete_url(world.shared_key, vm), {"confirm": vm["vmName"]}, **HX)
    assert response.status_code == 200 and 'class="outcome-succeeded"' in response.content.decode()
    assert world.sandbox.state.request_count(method="DELETE", key=SHARED) == 1
    assert set(deletion_rows().values_list("actor_username", flat=True)) == {"otto"}
    # And the operator reads that row on the audit page, like everyone who sees the key.
    assert vm["id"] in client.get(reverse("vms:audit")).content.decode()


# --- deleting several at once ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "confirm", "upstream_deletes", "skipped"),
    [
        ("anonymous", "2", 0, []),
        ("owner", "2", 2, []),
        ("viewer", "0", 0, ["you may not delete VMs of this account", "not found under your keys"]),
        ("operator", "1", 1, ["not found under your keys"]),
        ("stranger", "0", 0, ["not found under your keys", "not found under your keys"]),
    ],
)
def test_bulk_delete(world, role, confirm, upstream_deletes, skipped):
    shared_vm, private_vm = vm_of(world, SHARED, 1), vm_of(world, PRIVATE, 0)
    values = [f"{world.shared_key.pk}:{shared_vm['id']}", f"{world.private_key.pk}:{private_vm['id']}"]
    client = client_as(world, role)
    dialog = client.get(reverse("vms:bulk_delete"), {"vm": values})
    response = client.post(reverse("vms:bulk_delete"), {"vm": values, "confirm": confirm})
    if role == "anonymous":
        assert_sent_to_sign_in(dialog)
        assert_sent_to_sign_in(response)
    else:
        body = dialog.content.decode()
        for reason in skipped:
            assert body.count(reason) == skipped.count(reason)
        if role == "operator":
            assert "Production (…prod) · ops-anna" in body
    assert deletes(world) == upstream_deletes
    assert deletion_rows().filter(kind="intent").count() == upstream_deletes
    if role == "operator":
        assert set(deletion_rows().values_list("vm_id", "actor_username")) == {(shared_vm["id"], "otto")}


# --- the audit trail ------------------------------------------------------------------------------------


def audit_row(key, actor, vm_name: str) -> DeletionEvent:
    return DeletionEvent.objects.create(
        correlation_id=uuid.uuid4(),
        kind="intent",
        created_at=timezone.now(),
        actor_username=actor.get_username(),
        actor_id=str(actor.pk),
        key_id=str(key.pk),
        key_label=key.label,
        key_last_four=key.last_four,
        key_owner_username=key.owner.get_username(),
        vm_id="0x" + uuid.uuid4().hex.ljust(40, "0"),
        vm_name=vm_name,
    )


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("anonymous", set()),
        ("owner", {"gone-from-production", "gone-from-private"}),
        ("viewer", {"gone-from-production"}),
        ("operator", {"gone-from-production"}),
        ("stranger", {"gone-from-mine"}),
        ("auditor", {"gone-from-production", "gone-from-private", "gone-from-mine"}),
    ],
)
def test_audit_page_shows_the_rows_of_visible_keys_unless_allowed_all(
    world, django_user_model, role, visible
):
    anna, mallory = world.users["owner"], world.users["stranger"]
    audit_row(world.shared_key, anna, "gone-from-production")
    audit_row(world.private_key, anna, "gone-from-private")
    audit_row(world.stranger_key, mallory, "gone-from-mine")
    if role == "auditor":
        auditor = django_user_model.objects.create_user(username="audrey")
        auditor.user_permissions.add(Permission.objects.get(codename="view_all_deletions"))
        world.users["auditor"] = auditor
    client = client_as(world, role)
    for headers in ({}, HX):
        response = client.get(reverse("vms:audit"), **headers)
        if role == "anonymous":
            assert_sent_to_sign_in(response, htmx=bool(headers))
            continue
        body = response.content.decode()
        shown = {
            name for name in ("gone-from-production", "gone-from-private", "gone-from-mine") if name in body
        }
        assert shown == visible


# --- key pages ----------------------------------------------------------------------------------------

KEY_PAGES = ["vms:key_rename", "vms:key_remove", "vms:key_sharing"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("owner", {"vms:key_rename": 200, "vms:key_remove": 200, "vms:key_sharing": 200}),
        ("viewer", {"vms:key_rename": 404, "vms:key_remove": 404, "vms:key_sharing": 403}),
        ("operator", {"vms:key_rename": 404, "vms:key_remove": 404, "vms:key_sharing": 403}),
        ("stranger", {"vms:key_rename": 404, "vms:key_remove": 404, "vms:key_sharing": 404}),
    ],
)
def test_key_pages_of_a_shared_key(world, role, expected):
    client = client_as(world, role)
    for page in KEY_PAGES:
        url = reverse(page, args=[world.shared_key.pk])
        assert client.get(url).status_code == expected[page], page
    if role == "owner":
        return
    # Writes by anyone but the owner change nothing.
    assert (
        client.post(reverse("vms:key_rename", args=[world.shared_key.pk]), {"label": "Hijacked"}).status_code
        == 404
    )
    assert client.post(reverse("vms:key_remove", args=[world.shared_key.pk])).status_code == 404
    response = client.post(
        reverse("vms:key_sharing", args=[world.shared_key.pk]),
        {"group": world.groups["ops"].pk, "role": "operator"},
    )
    assert response.status_code == expected["vms:key_sharing"]
    unshare = reverse("vms:key_unshare", args=[world.shared_key.pk, world.viewer_share.pk])
    assert client.post(unshare).status_code == expected["vms:key_sharing"]
    world.shared_key.refresh_from_db()
    assert world.shared_key.label == "Production"
    assert KeyShare.objects.filter(api_key=world.shared_key).count() == 2


def test_key_pages_anonymous(world):
    client = client_as(world, "anonymous")
    for page in ["vms:keys", *KEY_PAGES]:
        url = reverse(page) if page == "vms:keys" else reverse(page, args=[world.shared_key.pk])
        assert_sent_to_sign_in(client.get(url))
    assert_sent_to_sign_in(
        client.post(reverse("vms:key_unshare", args=[world.shared_key.pk, world.viewer_share.pk]))
    )
    assert KeyShare.objects.count() == 2


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        ("owner", ["Your keys", "Production", "Private", "operators", "viewers", "Sharing"]),
        ("viewer", ["Shared with you", "Production", "…prod", "ops-anna", "Viewer"]),
        ("operator", ["Shared with you", "Production", "…prod", "ops-anna", "Operator", "may delete VMs"]),
        ("stranger", ["Your keys", "Mine"]),
    ],
)
def test_the_keys_page_lists_own_and_shared_keys_never_a_secret(world, role, shown):
    body = client_as(world, role).get(reverse("vms:keys")).content.decode()
    for text in shown:
        assert text in body, text
    for secret in (SHARED, PRIVATE, STRANGER):
        assert secret not in body
    if role in ("viewer", "operator"):
        assert "Private" not in body and "Mine" not in body
        shared_section = body[body.index("Shared with you") :]
        assert "Rename" not in shared_section and "Remove" not in shared_section
    if role == "stranger":
        assert "Production" not in body and "Shared with you" not in body


# --- guessed ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "stranger"])
def test_guessed_ids_of_vms_and_keys_belonging_to_others_are_404(world, role):
    client = client_as(world, role)
    private_vm, shared_vm = vm_of(world, PRIVATE), vm_of(world, SHARED, 1)
    own_key = world.stranger_key if role == "stranger" else world.shared_key
    guesses = [
        (world.private_key, private_vm),  # a key that is not shared with them
        (own_key, private_vm),  # somebody else's VM under a key they do see
        (world.stranger_key if role != "stranger" else world.private_key, shared_vm),
        (SimpleNamespace(pk=10**6), shared_vm),  # no such key
    ]
    for key, vm in guesses:
        detail = client.get(detail_url(key, vm))
        assert detail.status_code == 404
        status = client.get(reverse("vms:detail_status", args=[key.pk, vm["id"]]))
        # Under a key they do see, the polled status says "not in this account" and stops polling (286).
        assert status.status_code == (286 if key is own_key else 404)
        for response in (detail, status):
            assert vm["vmName"] is None or vm["vmName"] not in response.content.decode()
        assert client.get(delete_url(key, vm)).status_code == 404
        assert client.post(delete_url(key, vm), {"confirm": vm["vmName"] or vm["id"]}).status_code == 404
    for page in KEY_PAGES:
        for key_id in (world.private_key.pk, 10**6):
            assert client.get(reverse(page, args=[key_id])).status_code == 404
            assert client.post(reverse(page, args=[key_id])).status_code == 404
    assert (
        client.post(
            reverse("vms:key_unshare", args=[world.private_key.pk, world.viewer_share.pk])
        ).status_code
        == 404
    )
    assert deletes(world) == 0 and deletion_rows().count() == 0
    assert ApiKey.objects.count() == 3 and KeyShare.objects.count() == 2


# --- revocation takes effect on the very next request -------------------------------------------------------


def test_leaving_the_group_hides_the_vms_on_the_next_request(world):
    vm = vm_of(world, SHARED, 1)
    client = client_as(world, "viewer")
    assert f'data-vm-id="{vm["id"]}"' in client.get(reverse("vms:list")).content.decode()
    assert client.get(detail_url(world.shared_key, vm)).status_code == 200

    world.users["viewer"].groups.remove(world.groups["viewers"])

    assert f'data-vm-id="{vm["id"]}"' not in client.get(reverse("vms:list"), **HX).content.decode()
    assert client.get(detail_url(world.shared_key, vm)).status_code == 404
    assert "Production" not in client.get(reverse("vms:keys")).content.decode()


def test_unsharing_stops_an_operator_on_the_next_request(world):
    vm = vm_of(world, SHARED, 1)
    client = client_as(world, "operator")
    assert client.get(delete_url(world.shared_key, vm)).status_code == 200  # the dialog is open

    world.operator_share.delete()

    response = client.post(delete_url(world.shared_key, vm), {"confirm": vm["vmName"]}, **HX)
    assert response.status_code == 404
    assert deletes(world) == 0 and deletion_rows().count() == 0


def test_demoting_an_operator_to_viewer_stops_deleting_on_the_next_request(world):
    vm = vm_of(world, SHARED, 1)
    client = client_as(world, "operator")
    assert client.get(delete_url(world.shared_key, vm)).status_code == 200

    KeyShare.objects.filter(pk=world.operator_share.pk).update(role="viewer")

    response = client.post(delete_url(world.shared_key, vm), {"confirm": vm["vmName"]})
    assert response.status_code == 403
    bulk = client.post(
        reverse("vms:bulk_delete"), {"vm": [f"{world.shared_key.pk}:{vm['id']}"], "confirm": "1"}
    )
    assert "you may not delete VMs of this account" in bulk.content.decode()
    assert deletes(world) == 0 and deletion_rows().count() == 0


# --- the rule itself ---------------------------------------------------------------------------------------


def test_two_groups_one_key_is_listed_once_with_the_better_role(world):
    vic = world.users["viewer"]
    vic.groups.add(world.groups["operators"])
    keys = list(selectors.apikeys_for_user(user=vic))
    assert [(key.label, key.role_for_user) for key in keys] == [("Production", "operator")]
    vm = vm_of(world, SHARED, 1)
    body = client_as(world, "viewer").get(reverse("vms:list")).content.decode()
    assert body.count(f'data-vm-id="{vm["id"]}"') == 1


def test_deciding_visibility_is_one_query_however_many_shares(world, django_assert_num_queries):
    otto = world.users["operator"]
    for index in range(5):
        key = services.apikey_create(
            owner=world.users["owner"],
            label=f"Team {index}",
            secret=f"{SHARED}_{index}",  # one person stores an account once: five accounts
            base_url=world.sandbox.url,
            verify=False,
        )
        KeyShare.objects.create(api_key=key, group=world.groups["operators"], role="viewer")
    with django_assert_num_queries(1):
        keys = list(selectors.apikeys_for_user(user=otto))
        roles = {key.label: key.role_for_user for key in keys}
        owners = {key.owner.get_username() for key in keys}
    assert roles == {"Production": "operator", **{f"Team {index}": "viewer" for index in range(5)}}
    assert owners == {"ops-anna"}


def test_the_sql_statement_and_the_queryset_of_the_rule_agree(world):
    """keys_visible_to (the refreshing pages) and apikeys_visible_to (the rest) are one rule, twice."""
    from vms.permissions import apikeys_visible_to, keys_visible_to

    vic = world.users["viewer"]
    people = [user for user in world.users.values() if user is not None]

    def both(user, key_id=None):
        queryset = apikeys_visible_to(user=user).select_related("owner")
        if key_id is not None:
            queryset = queryset.filter(pk=key_id)
        expected = [(key.pk, key.role_for_user, key.owner.get_username()) for key in queryset]
        found = [
            (key.pk, key.role_for_user, key.owner_username)
            for key in keys_visible_to(user=user, key_id=key_id)
        ]
        return expected, found

    def check():
        for user in people:
            expected, found = both(user)
            assert found == expected
            for key in (world.shared_key, world.private_key, world.stranger_key):
                expected, found = both(user, key.pk)
                assert found == expected and len(found) <= 1

    check()
    vic.groups.add(world.groups["operators"])  # two shares of one key: listed once, the better role
    check()
    world.operator_share.delete()
    KeyShare.objects.create(api_key=world.private_key, group=world.groups["viewers"], role="operator")
    check()
    vic.is_active = False
    vic.save()
    check()
    assert keys_visible_to(user=vic) == []


def test_an_inactive_member_sees_nothing(world):
    vic = world.users["viewer"]
    vic.is_active = False
    vic.save()
    assert list(selectors.apikeys_for_user(user=vic)) == []


# --- the sharing page ---------------------------------------------------------------------------------------


def test_the_owner_shares_changes_the_role_and_unshares(world, django_user_model):
    auditors = Group.objects.create(name="auditors")
    newcomer = django_user_model.objects.create_user(username="nina")
    newcomer.groups.add(auditors)
    newcomer_client = Client()
    newcomer_client.force_login(newcomer)
    vm = vm_of(world, SHARED, 1)
    anna = client_as(world, "owner")
    url = reverse("vms:key_sharing", args=[world.shared_key.pk])

    page = anna.get(url).content.decode()
    assert "viewers" in page and "operators" in page and "auditors" in page  # shares, and the group choice
    assert SHARED not in page
    assert newcomer_client.get(detail_url(world.shared_key, vm)).status_code == 404

    response = anna.post(url, {"group": auditors.pk, "role": "viewer"}, follow=True)
    assert response.redirect_chain[-1][0] == url
    assert "shared with auditors as viewer" in response.content.decode()
    share = KeyShare.objects.get(api_key=world.shared_key, group=auditors)
    assert (share.role, share.created_by_username) == ("viewer", "ops-anna")
    assert newcomer_client.get(detail_url(world.shared_key, vm)).status_code == 200
    assert newcomer_client.get(delete_url(world.shared_key, vm)).status_code == 403

    anna.post(url, {"group": auditors.pk, "role": "operator"})
    assert KeyShare.objects.get(api_key=world.shared_key, group=auditors).role == "operator"
    assert KeyShare.objects.filter(group=auditors).count() == 1
    assert newcomer_client.get(delete_url(world.shared_key, vm)).status_code == 200

    response = anna.post(
        reverse("vms:key_unshare", args=[world.shared_key.pk, share.pk]),
        {"confirm": "stop-sharing"},
        follow=True,
    )
    assert "no longer shared with auditors" in response.content.decode()
    assert not KeyShare.objects.filter(group=auditors).exists()
    assert newcomer_client.get(detail_url(world.shared_key, vm)).status_code == 404


@pytest.mark.parametrize(
    "data",
    [
        {"group": "", "role": "viewer"},
        {"group": "999999", "role": "viewer"},
        {"group": "x", "role": "viewer"},
    ],
)
def test_sharing_with_no_or_an_unknown_group_is_refused(world, data):
    response = client_as(world, "owner").post(reverse("vms:key_sharing", args=[world.shared_key.pk]), data)
    assert response.status_code == 400
    assert KeyShare.objects.count() == 2


@pytest.mark.parametrize("role", ["", "admin", "owner", "OPERATOR"])
def test_sharing_with_an_unknown_role_is_refused(world, role):
    data = {"group": world.groups["ops"].pk, "role": role}
    response = client_as(world, "owner").post(reverse("vms:key_sharing", args=[world.shared_key.pk]), data)
    assert response.status_code == 400
    assert not KeyShare.objects.filter(group=world.groups["ops"]).exists()


def test_an_owner_without_the_sharing_permission_cannot_share(world):
    mallory = client_as(world, "stranger")  # owns "Mine", holds no sharing permission
    url = reverse("vms:key_sharing", args=[world.stranger_key.pk])
    assert mallory.get(url).status_code == 403
    assert mallory.post(url, {"group": world.groups["viewers"].pk, "role": "operator"}).status_code == 403
    assert not KeyShare.objects.filter(api_key=world.stranger_key).exists()
    keys_page = mallory.get(reverse("vms:keys")).content.decode()
    assert url not in keys_page
    # The viewers still do not see mallory's VMs.
    vm = vm_of(world, STRANGER)
    assert client_as(world, "viewer").get(detail_url(world.stranger_key, vm)).status_code == 404


def test_a_share_of_another_key_cannot_be_removed_through_this_one(world):
    other = KeyShare.objects.create(api_key=world.private_key, group=world.groups["viewers"], role="viewer")
    anna = client_as(world, "owner")
    response = anna.post(reverse("vms:key_unshare", args=[world.shared_key.pk, other.pk]))
    assert response.status_code == 404
    assert KeyShare.objects.filter(pk=other.pk).exists()


def test_unsharing_needs_the_confirmation_a_post_and_a_csrf_token(world):
    anna = client_as(world, "owner")
    unshare = reverse("vms:key_unshare", args=[world.shared_key.pk, world.viewer_share.pk])
    assert anna.get(unshare).status_code == 200  # the confirmation page, nothing changed
    assert anna.post(unshare).status_code == 200  # a POST without the confirmation: the page again
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.users["owner"])
    assert strict.post(unshare, {"confirm": "stop-sharing"}).status_code == 403
    assert (
        strict.post(
            reverse("vms:key_sharing", args=[world.shared_key.pk]),
            {"group": world.groups["ops"].pk, "role": "viewer"},
        ).status_code
        == 403
    )
    assert KeyShare.objects.count() == 2


def test_removing_a_shared_key_removes_its_shares_and_the_access(world):
    vm = vm_of(world, SHARED, 1)
    client_as(world, "owner").post(reverse("vms:key_remove", args=[world.shared_key.pk]))
    assert KeyShare.objects.count() == 0
    assert client_as(world, "viewer").get(detail_url(world.shared_key, vm)).status_code == 404
