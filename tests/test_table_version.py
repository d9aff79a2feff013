"""An unchanged refresh of the VM table is answered 204 from the cache alone; any change a person could see
renders the table in full."""

import re

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache, caches
from django.db import connection
from django.http import QueryDict
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import OPS_KEY, make_api_key
from tests.test_reconcile import add_outcome, make_intent
from vms import htmx, preferences, selectors, services, table_version, views, vm_cache
from vms.models import KeyShare
from vms.vm_table import VmQuery

pytestmark = pytest.mark.django_db

SESSION_PREFIX = "django.contrib.sessions.cache"

EXAMPLE_ID = "0x0000000000000000000000000000000000000001"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}
LIST = "/"


class FrozenClock:
    """The clock vms.table_version reads, standing still unless a test moves it."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def time(self) -> float:
        return self.seconds


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch):
    # Lists stay fresh for the whole test: only what a test changes may change the table.
    settings.FLUENCE_CACHE_SECONDS = 600
    frozen = FrozenClock(1_800_000_000 * 60 + 5)  # five seconds into a minute
    monkeypatch.setattr(table_version, "time", frozen)
    return frozen


def _render(client, url=LIST):
    """A refresh of the table that renders it; the version it carries."""
    response = client.get(url, **HX)
    assert response.status_code == 200
    version = response[table_version.HEADER]
    assert f'hx-headers=\'{{"{table_version.HEADER}": "{version}"}}\'' in response.content.decode()
    return version


def _poll(client, version, url=LIST, **extra):
    return client.get(url, HTTP_X_VM_TABLE_VERSION=version, **{**HX, **extra})


def _renders(response) -> str:
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<table id="vm-table"')
    return body


def _row(body: str, vm_id: str) -> str:
    row = body[body.index(f'data-vm-id="{vm_id}"') :]
    return row[: row.index("</tr>")]


def _count_cache_calls(monkeypatch) -> list[str]:
    """The cache operations a request makes, by name; those a backend makes inside another (LocMemCache's
    get_many is a loop of get) are not round trips of their own."""
    calls, depth = [], [0]
    backend = caches["default"]

    def counted(name, method):
        def call(*args, **kwargs):
            if not depth[0]:
                calls.append(name)
            depth[0] += 1
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1

        return call

    for name in ("get", "get_many", "set", "set_many", "add", "incr", "delete", "delete_many", "has_key"):
        monkeypatch.setattr(backend, name, counted(name, getattr(backend, name)))
    return calls


# --- an unchanged table ----------------------------------------------------------------------------------


def test_an_unchanged_poll_is_204_from_one_cache_read(alice_client, api_key, sandbox, monkeypatch):
    version = _render(alice_client)
    sandbox.state.reset_counts()
    calls = _count_cache_calls(monkeypatch)

    def forbidden(*args, **kwargs):
        raise AssertionError("an unchanged poll reads no list and renders nothing")

    monkeypatch.setattr(vm_cache, "load", forbidden)
    monkeypatch.setattr(selectors, "vms_for_user", forbidden)
    monkeypatch.setattr(views, "vm_table", forbidden)
    monkeypatch.setattr(htmx, "render", forbidden)
    with CaptureQueriesContext(connection) as queries:
        response = _poll(alice_client, version)
    assert response.status_code == 204
    assert response.content == b""
    assert "HX-Request" in response["Vary"]
    # The floor of any signed-in request: the session (in the database, or in the cache with Redis), then
    # the person. Nothing of keys, shares or audit; one cache read of its own.
    sessions_in_db = settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    tables = [re.search(r'FROM "(\w+)"', query["sql"])[1] for query in queries.captured_queries]
    assert tables == (["django_session", "auth_user"] if sessions_in_db else ["auth_user"])
    # In the cache, the session is read with the table counter along (fluence_portal.sessions).
    assert calls == (["get_many"] if sessions_in_db else ["get_many", "get_many"])
    assert sandbox.state.request_count() == 0


def test_polls_stay_204_while_nothing_changes(alice_client, alice_key, api_key, clock):
    version = _render(alice_client)
    # Each account in the table's order (by label: "Ops", then "Production") with its state: fetched.
    assert re.fullmatch(rf"{api_key.pk}o\.{alice_key.pk}o~[0-9a-f]{{32}}", version)
    for _ in range(3):
        clock.seconds += 15  # within the same minute
        assert _poll(alice_client, version).status_code == 204


def test_the_version_is_of_the_results_that_were_rendered(alice_client, user, api_key, sandbox, monkeypatch):
    # Another process stores a newer list between this request's fetch and its rendering: the page shows
    # the older list, so its version must not claim the newer one.
    fetch_for_user = selectors.vms_for_user
    shown = []

    def list_then_someone_refreshes(*, user):
        listing = fetch_for_user(user=user)
        shown.append(listing)
        sandbox.state.add_vm(OPS_KEY, name="stored-meanwhile", status="ACTIVE")
        vm_cache.forget(api_key.pk)
        fetch_for_user(user=user)
        return listing

    monkeypatch.setattr(selectors, "vms_for_user", list_then_someone_refreshes)
    response = alice_client.get(LIST, **HX)
    monkeypatch.setattr(selectors, "vms_for_user", fetch_for_user)
    assert "stored-meanwhile" not in response.content.decode()
    version = response[table_version.HEADER]
    expected = table_version.version(
        table_version.basis(),
        user=user,
        query=VmQuery.from_querydict(QueryDict("")),
        accounts=shown[0].accounts,
    )
    assert version == expected
    assert "stored-meanwhile" in _renders(_poll(alice_client, version))


# --- what makes a poll render again ----------------------------------------------------------------------


def test_a_vm_added_in_fluence_shows_once_the_cached_list_expires(alice_client, api_key, sandbox):
    version = _render(alice_client)
    added = sandbox.state.add_vm(OPS_KEY, name="added-later", status="ACTIVE")
    assert _poll(alice_client, version).status_code == 204  # the list is still fresh in the cache
    vm_cache.forget(api_key.pk)
    assert "added-later" in _row(_renders(_poll(alice_client, version)), added["id"])


def test_a_deletion_mark_shows_at_the_next_poll(alice_client, api_key):
    version = _render(alice_client)
    vm_cache.mark_deleting(api_key.pk, EXAMPLE_ID)
    assert "Deleting…" in _row(_renders(_poll(alice_client, version)), EXAMPLE_ID)


def test_a_deletion_mark_that_lapses_shows_while_the_list_stays_fresh(alice_client, api_key):
    vm_cache.mark_deleting(api_key.pk, EXAMPLE_ID)
    version = _render(alice_client)
    cache.delete(vm_cache.deleting_key(api_key.pk))  # the mark's hour is over; the list is unchanged
    assert "Deleting…" not in _row(_renders(_poll(alice_client, version)), EXAMPLE_ID)


def test_a_failing_account_renders_and_gets_no_version(alice_client, alice_key, api_key, sandbox):
    version = _render(alice_client)
    sandbox.state.set_faults(key=OPS_KEY, error_rate=1.0, error_status=503)
    vm_cache.forget(api_key.pk)
    response = _poll(alice_client, version)
    body = _renders(response)
    assert "account-problem" in body and "not refreshed · last data" in body
    # Every poll renders while it fails: its ages are second by second.
    assert table_version.HEADER not in response
    assert table_version.HEADER not in body
    again = _poll(alice_client, version)
    assert again.status_code == 200 and table_version.HEADER not in again


def test_a_full_page_with_a_failing_account_has_no_version(alice_client, alice_key, api_key, sandbox):
    sandbox.state.set_faults(key=OPS_KEY, error_rate=1.0, error_status=503)
    response = alice_client.get(LIST)
    assert response.status_code == 200
    assert table_version.HEADER not in response
    assert table_version.HEADER not in response.content.decode()


def test_a_key_never_fetched_keeps_the_version(alice_client, user, alice_key, api_key, sandbox, settings):
    settings.FLUENCE_API_URLS = [url for url in settings.FLUENCE_API_URLS if url != sandbox.url]
    version = _render(alice_client)
    assert version.startswith(f"{api_key.pk}n.{alice_key.pk}n~")  # never fetched: not allowed
    assert _poll(alice_client, version).status_code == 204


def test_a_share_removed_or_added_shows_at_the_next_poll(alice_client, user, other_user, api_key, sandbox):
    team = Group.objects.create(name="Team")
    user.groups.add(team)
    theirs = make_api_key(other_user, sandbox, secret="sbx_mallory_shared_01", label="Theirs", vm_count=2)
    share = KeyShare.objects.create(api_key=theirs, group=team, role=KeyShare.Role.VIEWER)
    version = _render(alice_client)
    share.delete()
    body = _renders(_poll(alice_client, version))
    assert f'data-account="{theirs.pk}"' not in body
    version = _render(alice_client)
    KeyShare.objects.create(api_key=theirs, group=team, role=KeyShare.Role.VIEWER)
    assert f'data-account="{theirs.pk}"' in _renders(_poll(alice_client, version))


def test_leaving_a_group_shows_at_the_next_poll(alice_client, user, other_user, api_key, sandbox):
    team = Group.objects.create(name="Team")
    user.groups.add(team)
    theirs = make_api_key(other_user, sandbox, secret="sbx_mallory_shared_01", label="Theirs", vm_count=2)
    KeyShare.objects.create(api_key=theirs, group=team, role=KeyShare.Role.VIEWER)
    version = _render(alice_client)
    user.groups.remove(team)
    assert f'data-account="{theirs.pk}"' not in _renders(_poll(alice_client, version))


def test_a_renamed_key_shows_at_the_next_poll(alice_client, user, api_key):
    version = _render(alice_client)
    services.apikey_rename(user=user, api_key=api_key, label="Renamed ops")
    assert "Renamed ops" in _renders(_poll(alice_client, version))


def test_chosen_columns_show_at_the_next_poll(alice_client, user, api_key):
    version = _render(alice_client)
    preferences.vm_columns_set(user=user, columns=["ip"])
    body = _renders(_poll(alice_client, version))
    assert 'class="col-ip"' in body and 'class="col-vcpu"' not in body


def test_a_deletion_audit_row_shows_at_the_next_poll(alice_client, api_key):
    intent = make_intent(api_key, vm_id=EXAMPLE_ID)
    version = _render(alice_client)
    add_outcome(intent, "unknown")
    assert "deletion-unknown" in _row(_renders(_poll(alice_client, version)), EXAMPLE_ID)


def test_a_change_is_stale_again_once_committed(
    alice_client, user, api_key, django_capture_on_commit_callbacks
):
    # A page rendered between the write and its commit may have read the rows as they were before it.
    with django_capture_on_commit_callbacks() as at_commit:
        services.apikey_rename(user=user, api_key=api_key, label="Renamed ops")
        version = _render(alice_client)
    assert _poll(alice_client, version).status_code == 204
    for callback in at_commit:
        callback()
    _renders(_poll(alice_client, version))


def test_signing_in_elsewhere_changes_nothing(alice_client, user, api_key):
    version = _render(alice_client)
    Client().login(username="alice", password="alice-password-1")  # writes last_login only
    assert _poll(alice_client, version).status_code == 204


def test_an_explicit_epoch_bump_renders_again(alice_client, api_key):
    # For writes that send no signal (QuerySet.update(): a generation switch, a key rotation).
    version = _render(alice_client)
    table_version.bump_epoch()
    _renders(_poll(alice_client, version))


def test_an_evicted_epoch_renders_again_then_settles(alice_client, api_key):
    version = _render(alice_client)
    cache.delete(table_version.EPOCH_KEY)
    _renders(_poll(alice_client, version))
    assert _poll(alice_client, _render(alice_client)).status_code == 204


@pytest.mark.parametrize("url", ["/?q=vm", "/?sort=-name", "/?page=2", "/?status=active"])
def test_another_query_renders(alice_client, api_key, url):
    version = _render(alice_client)
    _renders(_poll(alice_client, version, url=url))
    assert _poll(alice_client, _render(alice_client, url), url=url).status_code == 204


def test_the_next_minute_renders(alice_client, api_key, clock):
    version = _render(alice_client)
    clock.seconds += 60
    _renders(_poll(alice_client, version))


def test_another_persons_version_is_not_theirs(alice_client, user, other_user, api_key):
    team = Group.objects.create(name="Team")
    user.groups.add(team)
    other_user.groups.add(team)
    KeyShare.objects.create(api_key=api_key, group=team, role=KeyShare.Role.VIEWER)
    alices = _render(alice_client)
    mallory = Client()
    mallory.force_login(other_user)
    mallorys = _render(mallory)
    assert mallorys.split("~")[0] == alices.split("~")[0]  # the same account, the same plan
    assert _poll(mallory, mallorys).status_code == 204
    _renders(_poll(mallory, alices))


# --- what a poll may send ----------------------------------------------------------------------------------


def test_a_full_page_is_never_204(alice_client, api_key):
    version = _render(alice_client)
    page = alice_client.get(LIST, HTTP_X_VM_TABLE_VERSION=version)
    assert page.status_code == 200 and "<html" in page.content.decode()
    boosted = alice_client.get(LIST, HTTP_X_VM_TABLE_VERSION=version, HTTP_HX_BOOSTED="true", **HX)
    assert boosted.status_code == 200 and "<html" in boosted.content.decode()


def _edited(version: str) -> list[str]:
    plan, mac = version.split("~")
    key_id = plan[:-1]
    return [
        f"{key_id}d~{mac}",  # another state claimed
        f"{plan}.{int(key_id) + 1}o~{mac}",  # another account claimed
        f"~{mac}",  # no account claimed
        f"{plan}~{'0' * 32}",  # a made-up MAC
        f"{plan}~{mac.upper()}",
        f"{plan}~{mac[:-1]}",
        f"{plan}~{mac}0",
        f"{plan}~~{mac}",
        f"{plan}.~{mac}",
        f"0o~{mac}",
        f"-{plan}~{mac}",
        f"{key_id}x~{mac}",
        f"{chr(0x661) * len(key_id)}o~{mac}",  # digits, but Arabic-Indic ones
        ".".join([plan] * (table_version.MAX_ACCOUNTS + 1)) + f"~{mac}",
        f"{plan}~{mac}" + " " * 2000,
        "9" * 100_000,
        "",
        "~",
        "garbage",
    ]


def test_edited_forged_or_oversized_versions_render_in_full(alice_client, api_key):
    version = _render(alice_client)
    for claimed in _edited(version):
        _renders(_poll(alice_client, claimed))
    assert _poll(alice_client, version).status_code == 204


def test_a_plan_beyond_its_cap_reads_nothing(alice_client, api_key, monkeypatch):
    reads = []
    backend = caches["default"]
    get_many = backend.get_many
    monkeypatch.setattr(
        backend, "get_many", lambda keys, **kw: reads.append(list(keys)) or get_many(keys, **kw)
    )
    fake_mac = "0" * 32
    at_cap = ".".join(f"{999_999_999_000 + n}o" for n in range(table_version.MAX_ACCOUNTS))
    assert len(f"{at_cap}~{fake_mac}") <= table_version.MAX_LENGTH  # the longest key ids still fit
    _renders(_poll(alice_client, f"{at_cap}~{fake_mac}"))
    beyond = ".".join(f"{n}o" for n in range(1, table_version.MAX_ACCOUNTS + 2))
    _renders(_poll(alice_client, f"{beyond}~{fake_mac}"))
    # Only the plan within the cap was read: the epoch, then each key's fresh list and deletion marks.
    plans = [keys for keys in reads if not any(key.startswith(SESSION_PREFIX) for key in keys)]
    assert [len(keys) for keys in plans if table_version.EPOCH_KEY in keys] == [
        1 + 2 * table_version.MAX_ACCOUNTS
    ]


def test_fetching_carries_the_token_only_for_fresh_lists(user, api_key, sandbox):
    (fresh,) = selectors.vms_for_user(user=user).accounts
    assert fresh.token == cache.get(vm_cache.fresh_key(api_key.pk)).token
    sandbox.state.set_faults(key=OPS_KEY, error_rate=1.0, error_status=503)
    vm_cache.forget(api_key.pk)
    (stale,) = selectors.vms_for_user(user=user).accounts
    assert stale.is_stale and stale.token is None


def test_a_full_render_reads_columns_and_unknown_outcomes_once_per_epoch(alice_client, api_key):
    _render(alice_client)  # the first render of this epoch reads both
    with CaptureQueriesContext(connection) as again:
        _render(alice_client, url=LIST + "?page=1")  # another query of the table: rendered in full
    tables = " ".join(query["sql"] for query in again.captured_queries)
    assert "vms_userpreferences" not in tables and "vms_deletionevent" not in tables
    table_version.bump_epoch()
    with CaptureQueriesContext(connection) as after_a_write:
        _render(alice_client)
    tables = " ".join(query["sql"] for query in after_a_write.captured_queries)
    assert "vms_userpreferences" in tables and "vms_deletionevent" in tables


def test_a_process_reads_its_own_columns_and_unknown_outcomes_again_without_the_shared_cache(
    alice_client, api_key, monkeypatch
):
    _render(alice_client)  # read from the database, kept in the shared cache and in this process
    asked = []
    get_many = cache.get_many
    monkeypatch.setattr(
        cache, "get_many", lambda keys, *args, **kwargs: asked.extend(keys) or get_many(keys, *args, **kwargs)
    )
    _render(alice_client, url=LIST + "?page=1")
    assert asked and not [key for key in asked if key.startswith("vms:table-read:")]
    # Another process has not seen them: it finds them in the shared cache, not in the database.
    table_version.forget_kept_here()
    with CaptureQueriesContext(connection) as elsewhere:
        _render(alice_client)
    assert [key for key in asked if key.startswith("vms:table-read:")]
    tables = " ".join(query["sql"] for query in elsewhere.captured_queries)
    assert "vms_userpreferences" not in tables and "vms_deletionevent" not in tables
