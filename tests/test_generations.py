"""API generations per key, over the sandbox: a new key's generation is found by probing, a key whose path
Fluence retired is switched once, and today's API is listed, terminated and refused as Fluence would."""

import pytest
import requests
import responses
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.factories import deletion_rows
from vms import selectors, services, vm_cache
from vms.fluence.client import FluenceClient
from vms.models import ApiKey
from vms.services import RequestMeta

META = RequestMeta(actor_username="alice", actor_id="1", client_ip=None, user_agent="test", request_id="r1")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "generation", "probes"),
    [
        ("sbx_b_detect_current", "b", ["/v2/vms"]),
        ("sbx_a_detect_twentyfive", "a", ["/v2/vms", "/vms/v3"]),
        ("sbx_detect_the_draft", "baseline", ["/v2/vms", "/vms/v3", "/vms/v2"]),
    ],
)
def test_a_new_key_is_stored_with_the_generation_that_answers(user, sandbox, key, generation, probes):
    api_key = services.apikey_create(owner=user, label="Mine", secret=key, base_url=sandbox.url)

    assert api_key.generation == generation
    asked = [
        path for path in ("/v2/vms", "/vms/v3", "/vms/v2") if sandbox.state.request_count(path=path, key=key)
    ]
    assert asked == probes


@pytest.mark.django_db
def test_a_first_probe_that_times_out_does_not_stop_the_detection(user, sandbox):
    key = "sbx_a_detect_slow_first"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru(sandbox.url + "/vms/")
        mock.get(sandbox.url + "/v2/vms", body=requests.ReadTimeout("read timed out"))
        api_key = services.apikey_create(owner=user, label="Mine", secret=key, base_url=sandbox.url)

    assert api_key.generation == "a"


@pytest.mark.django_db
def test_a_refused_key_is_not_stored_and_only_the_first_probe_was_sent(user, sandbox):
    sandbox.state.configure_account("sbx_b_revoked_key_0001", revoked=True)
    with pytest.raises(ValidationError) as caught:
        services.apikey_create(owner=user, label="Old", secret="sbx_b_revoked_key_0001", base_url=sandbox.url)

    assert "refused this key" in str(caught.value)
    assert not ApiKey.objects.exists()
    assert sandbox.state.request_count(key="sbx_b_revoked_key_0001") == 1


@pytest.mark.django_db
@pytest.mark.parametrize("forced", ["b", "a", "baseline"])
def test_a_forced_generation_is_tried_as_such(user, sandbox, forced):
    key = {"b": "sbx_b_forced_key_01", "a": "sbx_a_forced_key_01", "baseline": "sbx_forced_key_01"}[forced]
    # Forcing a generation the account does not speak is refused with words, nothing stored.
    other = "a" if forced == "b" else "b"
    with pytest.raises(ValidationError) as caught:
        services.apikey_create(owner=user, label="Wrong", secret=key, base_url=sandbox.url, generation=other)
    assert "does not answer this key" in str(caught.value)
    api_key = services.apikey_create(
        owner=user, label="Mine", secret=key, base_url=sandbox.url, generation=forced
    )
    assert api_key.generation == forced


@pytest.mark.django_db
@pytest.mark.parametrize("base", [0, 1])
def test_250_vms_of_todays_api_are_listed_once_on_pages_from_either_base(sandbox, base):
    key = f"sbx_b_paged_from_{base}_xx"
    sandbox.state.configure_account(key, vm_count=250, page_base=base, max_per_page=100)
    expected = {vm["id"] for vm in _b_items(sandbox, key)}
    sandbox.state.reset_counts()

    vms = FluenceClient(base_url=sandbox.url, api_key=key, generation="b").list_vms()

    assert len(vms) == 250 and {vm.id for vm in vms} == expected
    assert sandbox.state.request_count(path="/v2/vms", key=key) == 3


def _b_items(sandbox, key):
    items, page = [], None
    while True:
        params = {"perPage": 100, **({} if page is None else {"page": page})}
        answer = requests.get(
            f"{sandbox.url}/v2/vms", params=params, headers={"X-API-KEY": key}, timeout=10
        ).json()
        if not answer["items"]:
            return items
        items += answer["items"]
        page = answer["pagination"]["currentPage"] + 1


def _launched(sandbox, key):
    return next(item for item in _b_items(sandbox, key) if item["status"] == "launched")


@pytest.mark.django_db
def test_terminate_sends_exactly_one_post_and_is_audited(user, sandbox):
    key = "sbx_b_terminate_once"
    api_key = services.apikey_create(owner=user, label="Now", secret=key, base_url=sandbox.url)
    target = _launched(sandbox, key)
    vm = next(vm for vm in selectors.vms_for_user(user=user).rows if vm.vm.id == target["id"]).vm

    outcome = services.vm_delete(user=api_key.owner, api_key=api_key, vm=vm, meta=META)

    assert outcome.succeeded
    assert sandbox.state.request_count(method="POST", key=key) == 1
    assert sandbox.state.request_count(method="POST", path=f"/v2/vms/{vm.id}/terminate", key=key) == 1
    outcomes = deletion_rows().filter(vm_id=vm.id).values_list("kind", "outcome")
    assert sorted(outcomes) == [("intent", ""), ("outcome", "succeeded")]
    # Terminating, then terminated, and still listed: never offered for deletion again.
    listed = FluenceClient(base_url=sandbox.url, api_key=key, generation="b").list_vms()
    again = next(item for item in listed if item.id == vm.id)
    assert again.status.key in ("terminating", "terminated") and not again.can_terminate


@pytest.mark.django_db
def test_a_read_only_key_is_told_so_and_the_audit_says_failed(user, sandbox):
    key = "sbx_b_read_only_key"
    sandbox.state.configure_account(key, vm_count=6, read_only=True)
    api_key = services.apikey_create(owner=user, label="Viewer", secret=key, base_url=sandbox.url)
    vm = next(row.vm for row in selectors.vms_for_user(user=user).rows if row.vm.can_terminate)

    outcome = services.vm_delete(user=api_key.owner, api_key=api_key, vm=vm, meta=META)

    assert outcome.outcome == "failed" and "read-only" in outcome.message
    assert deletion_rows().get(vm_id=vm.id, kind="outcome").upstream_status == 403


@pytest.mark.django_db
def test_a_vm_fluence_does_not_allow_to_terminate_is_refused_before_anything_is_sent(user, sandbox):
    key = "sbx_b_launching_vm"
    api_key = services.apikey_create(owner=user, label="Now", secret=key, base_url=sandbox.url)
    vm = next(row.vm for row in selectors.vms_for_user(user=user).rows if row.vm.status.key == "launching")

    with pytest.raises(services.DeletionRefused):
        services.vm_delete(user=api_key.owner, api_key=api_key, vm=vm, meta=META)

    assert sandbox.state.request_count(method="POST", key=key) == 0
    assert not deletion_rows().exists()


@pytest.mark.django_db
def test_a_vm_whose_status_changed_meanwhile_gets_fluences_406_as_a_failed_outcome(user, sandbox):
    key = "sbx_b_raced_terminate"
    api_key = services.apikey_create(owner=user, label="Now", secret=key, base_url=sandbox.url)
    vm = next(row.vm for row in selectors.vms_for_user(user=user).rows if row.vm.can_terminate)
    requests.post(f"{sandbox.url}/v2/vms/{vm.id}/terminate", headers={"X-API-KEY": key}, timeout=10)

    outcome = services.vm_delete(user=api_key.owner, api_key=api_key, vm=vm, meta=META)

    assert outcome.outcome == "failed" and "current status" in outcome.message


@pytest.mark.django_db
def test_a_key_whose_path_was_retired_is_switched_once_and_the_keys_page_says_so(user, alice_client, sandbox):
    key = "sbx_b_retired_path_01"
    api_key = services.apikey_create(
        owner=user, label="Moved", secret=key, base_url=sandbox.url, generation="a", verify=False
    )

    listing = selectors.vms_for_user(user=user)

    assert listing.accounts[0].problem is None and len(listing.rows) == 12
    assert listing.accounts[0].account.generation == "b"  # shown as what it now speaks …
    api_key.refresh_from_db()
    assert api_key.generation == "a"  # … while a read writes nothing
    services.apikeys_record_answers(results=listing.accounts)
    api_key.refresh_from_db()
    assert (api_key.generation, api_key.previous_generation) == ("b", "a")
    assert api_key.generation_changed_at is not None
    vm_cache.forget(api_key.pk)
    selectors.vms_for_user(user=user)
    assert sandbox.state.request_count(path="/vms/v3", key=key) == 1  # never asked the old path again
    body = alice_client.get(reverse("vms:keys")).content.decode()
    assert "current API" in body and "2025 API (v3)" in body


@pytest.mark.django_db
def test_a_path_that_stays_gone_is_probed_again_at_most_once_per_ten_minutes(user, sandbox):
    base = "https://api.fluence.dev"
    api_key = services.apikey_create(
        owner=user, label="Gone", secret="sbx_gone_everywhere", base_url=base, generation="b", verify=False
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for path in (
            "/v2/vms",
            "/vms/v3",
            "/vms/v2",
            "/v1/clusters",
            "/v1/datacenters",
            "/v2/users/balances",
        ):
            mock.get(base + path, status=404, json={"error": "Not found"})
        for _ in range(3):
            result = selectors.vms_for_user(user=user).accounts[0]
            vm_cache.forget(api_key.pk)
        probes = [call for call in mock.calls if call.request.url.startswith(base + "/vms/")]

    assert result.problem_kind == "unavailable" or "does not know" in result.problem
    assert len(probes) == 2  # /vms/v3 and /vms/v2, once
    api_key.refresh_from_db()
    assert api_key.generation == "b"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "generation", "deletes"), [("sbx_a_bulk_three", "a", 1), ("sbx_bulk_three", "baseline", 3)]
)
def test_bulk_delete_of_one_key_is_one_call_where_the_api_takes_many(user, sandbox, key, generation, deletes):
    api_key = services.apikey_create(owner=user, label="Bulk", secret=key, base_url=sandbox.url)
    assert api_key.generation == generation
    vms = [row.vm for row in selectors.vms_for_user(user=user).rows if row.vm.status.key == "active"][:3]

    results = services.vms_delete(user=api_key.owner, api_key=api_key, vms=vms, meta=META)

    assert [result.vm_id for result in results] == [vm.id for vm in vms]
    assert all(result.succeeded for result in results)
    assert sandbox.state.request_count(method="DELETE", key=key) == deletes
    rows = deletion_rows().values_list("vm_id", "kind", "outcome")
    for vm in vms:  # every VM keeps its own intent and outcome
        assert sorted(kind for vm_id, kind, _ in rows if vm_id == vm.id) == ["intent", "outcome"]
    assert len({row.correlation_id for row in deletion_rows().all()}) == 3


@pytest.mark.django_db
def test_a_vm_already_being_deleted_is_left_out_of_the_one_call(user, sandbox):
    key = "sbx_a_bulk_with_one_done"
    api_key = services.apikey_create(owner=user, label="Bulk", secret=key, base_url=sandbox.url)
    vms = [row.vm for row in selectors.vms_for_user(user=user).rows if row.vm.status.key == "active"][:3]
    vm_cache.mark_deleting(api_key.pk, vms[1].id)

    results = services.vms_delete(user=api_key.owner, api_key=api_key, vms=vms, meta=META)

    assert [result.outcome for result in results] == ["succeeded", "not_attempted", "succeeded"]
    assert sandbox.state.request_count(method="DELETE", key=key) == 1
    assert not deletion_rows().filter(vm_id=vms[1].id).exists()
