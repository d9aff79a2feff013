"""`/-/metrics`: who may scrape it, and that its counters move when the portal lists, fails, deletes and
refuses. The counters are this process's (one pytest-xdist worker): each test compares before and after."""

import hmac
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import ALICE_KEY, OPS_KEY, make_api_key
from vms import metrics, resilience, services, vm_actions

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-the-suite-0001"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
UPSTREAM = "fluence_portal_upstream_request_duration_seconds_count"


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_INCLUDE_ACCOUNTS = False


class Scrape(dict):
    """(sample name, labels) -> value, from the Prometheus text of one scrape."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels) -> float:
        return self.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self}


def scrape() -> Scrape:
    response = Client().get("/-/metrics", headers=BEARER)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return Scrape(response.content.decode())


def upstream_calls(scraped: Scrape, sandbox, *, operation: str, outcome: str, generation="baseline") -> float:
    return scraped.value(
        UPSTREAM, base_url=sandbox.url, generation=generation, operation=operation, outcome=outcome
    )


# --- access -------------------------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token_or_networks(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []

    response = client.get("/-/metrics", headers=BEARER)

    assert response.status_code == 404
    assert b"fluence_portal" not in response.content


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN],
    ids=["none", "empty", "longer", "shorter", "basic", "no-scheme"],
)
def test_a_missing_or_wrong_token_gets_401_and_is_logged_without_it(
    client, metrics_on, caplog, authorization
):
    caplog.set_level(logging.WARNING, logger="fluence_portal.security")

    response = client.get("/-/metrics", headers={"Authorization": authorization} if authorization else {})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"fluence_portal" not in response.content
    assert "metrics scrape refused" in caplog.text
    assert TOKEN[:-1] not in caplog.text


def test_the_right_token_gets_prometheus_text(client, metrics_on):
    response = client.get("/-/metrics", headers={"Authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies
    families = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"fluence_portal_upstream_request_duration_seconds", "fluence_portal_circuit_state"} <= families


def test_openmetrics_is_served_when_asked_for(client, metrics_on):
    response = client.get("/-/metrics", headers={**BEARER, "Accept": "application/openmetrics-text"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_the_token_is_compared_in_constant_time(client, metrics_on, monkeypatch):
    compared, compare_digest = [], hmac.compare_digest

    def spy(offered, expected):
        compared.append((offered, expected))
        return compare_digest(offered, expected)

    monkeypatch.setattr("fluence_portal.metrics_endpoint.hmac.compare_digest", spy)

    assert client.get("/-/metrics", headers={"Authorization": "Bearer a-guess"}).status_code == 401
    assert client.get("/-/metrics", headers=BEARER).status_code == 200
    assert compared == [(b"a-guess", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_an_allowed_network_needs_no_token_and_another_gets_403(client, settings, caplog):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the test client's REMOTE_ADDR

    assert client.get("/-/metrics").status_code == 200

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "192.168.1.7"]
    caplog.set_level(logging.WARNING, logger="fluence_portal.security")
    response = client.get("/-/metrics", headers=BEARER)
    assert response.status_code == 403
    assert "client 127.0.0.1 is not in METRICS_ALLOWED_NETWORKS" in caplog.text


def test_networks_are_matched_on_the_client_address_behind_trusted_proxies(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.TRUSTED_PROXY_HOPS = 1

    assert client.get("/-/metrics", headers={"X-Forwarded-For": "10.2.3.4"}).status_code == 200
    assert client.get("/-/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403


def test_with_both_the_token_or_an_allowed_address_lets_a_scrape_in(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert Client(REMOTE_ADDR="10.9.9.9").get("/-/metrics").status_code == 200
    assert Client(REMOTE_ADDR="203.0.113.9").get("/-/metrics", headers=BEARER).status_code == 200
    assert Client(REMOTE_ADDR="203.0.113.9").get("/-/metrics").status_code == 401


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("METRICS_TOKEN", "short-token", "METRICS_TOKEN must be at least 16 characters"),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,intranet", "which is not an IP network"),
    ],
)
def test_a_weak_token_or_a_bad_network_refuses_to_start(variable, value, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "fluence_portal.settings_test", variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert message in result.stderr
    assert value not in result.stderr or variable != "METRICS_TOKEN"


def test_a_scrape_skips_sessions_sign_in_hosts_and_https_redirects(settings, metrics_on, user):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    signed_in = Client()
    signed_in.force_login(user)

    response = signed_in.get("/-/metrics", headers={**BEARER, "Host": "10.1.2.3:8000", "HX-Request": "true"})

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers and "Location" not in response.headers


# --- counters -----------------------------------------------------------------------------------------------


def test_a_list_refresh_counts_the_upstream_call_and_then_a_cache_hit(
    alice_client, api_key, sandbox, metrics_on
):
    before = scrape()

    alice_client.get(reverse("vms:list"))
    after_first = scrape()
    alice_client.get(reverse("vms:list"), headers={"HX-Request": "true"})
    after_second = scrape()

    lookups = "fluence_portal_vm_list_cache_lookups_total"
    assert after_first.value(lookups, result="miss") == before.value(lookups, result="miss") + 1
    assert upstream_calls(after_first, sandbox, operation="list", outcome="200") == (
        upstream_calls(before, sandbox, operation="list", outcome="200") + 1
    )
    assert after_second.value(lookups, result="hit") == after_first.value(lookups, result="hit") + 1
    assert upstream_calls(after_second, sandbox, operation="list", outcome="200") == (
        upstream_calls(after_first, sandbox, operation="list", outcome="200")
    )
    # Latency is observed too: the histogram's sum grew.
    sum_labels = {"base_url": sandbox.url, "generation": "baseline", "operation": "list", "outcome": "200"}
    name = "fluence_portal_upstream_request_duration_seconds_sum"
    assert after_first.value(name, **sum_labels) > before.value(name, **sum_labels)


def test_adding_a_key_counts_its_probes_and_the_action(alice_client, sandbox, metrics_on):
    before = scrape()

    alice_client.post(
        reverse("vms:key_add"),
        {"label": "Probed", "secret": "sbx_metrics_probe_0001", "base_url": sandbox.url},
    )
    alice_client.post(reverse("vms:key_add"), {"label": "", "secret": "short", "base_url": sandbox.url})
    after = scrape()

    # Today's API is asked first (404 for a baseline key), then generation A, then the baseline answers.
    assert upstream_calls(after, sandbox, generation="b", operation="probe", outcome="404") == (
        upstream_calls(before, sandbox, generation="b", operation="probe", outcome="404") + 1
    )
    assert upstream_calls(after, sandbox, generation="baseline", operation="list", outcome="200") == (
        upstream_calls(before, sandbox, generation="baseline", operation="list", outcome="200") + 1
    )
    actions = "fluence_portal_actions_total"
    assert after.value(actions, action="apikey_add", outcome="succeeded") == (
        before.value(actions, action="apikey_add", outcome="succeeded") + 1
    )


def test_a_fault_counts_its_status_opens_the_circuit_and_shows_it(
    alice_client, api_key, sandbox, settings, metrics_on
):
    settings.FLUENCE_CACHE_SECONDS = 0
    settings.FLUENCE_CIRCUIT_FAILURES = 2
    settings.FLUENCE_CIRCUIT_SECONDS = 30
    before = scrape()
    assert before.value("fluence_portal_circuit_state", base_url=sandbox.url, state="closed") == 1

    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    for _ in range(3):
        alice_client.get(reverse("vms:list"))
    after = scrape()

    # Two refreshes reached Fluence, each a GET tried twice on a 503; the third found the circuit open.
    assert upstream_calls(after, sandbox, operation="list", outcome="503") == (
        upstream_calls(before, sandbox, operation="list", outcome="503") + 4
    )
    opened = "fluence_portal_circuit_opened_total"
    assert after.value(opened, base_url=sandbox.url) == before.value(opened, base_url=sandbox.url) + 1
    assert after.value("fluence_portal_circuit_state", base_url=sandbox.url, state="open") == 1
    assert after.value("fluence_portal_circuit_state", base_url=sandbox.url, state="closed") == 0
    assert after.value("fluence_portal_circuit_failures", base_url=sandbox.url) == 2


def test_a_429_counts_a_cool_down(alice_client, api_key, sandbox, settings, metrics_on):
    settings.FLUENCE_CACHE_SECONDS = 0
    before = scrape()

    sandbox.state.set_faults(rate_limit_retry_after=40)
    alice_client.get(reverse("vms:list"))
    alice_client.get(reverse("vms:list"))  # cooling down: no call
    after = scrape()

    cooldowns = "fluence_portal_upstream_cooldowns_total"
    assert after.value(cooldowns) == before.value(cooldowns) + 1
    assert upstream_calls(after, sandbox, operation="list", outcome="429") == (
        upstream_calls(before, sandbox, operation="list", outcome="429") + 1
    )


def test_a_timeout_is_counted_as_one(alice_client, api_key, sandbox, settings, metrics_on):
    settings.FLUENCE_CACHE_SECONDS = 0
    settings.FLUENCE_READ_TIMEOUT = 0.2
    before = scrape()

    sandbox.state.set_faults(latency_ms=600)
    alice_client.get(reverse("vms:list"))
    after = scrape()

    assert upstream_calls(after, sandbox, operation="list", outcome="timeout") == (
        upstream_calls(before, sandbox, operation="list", outcome="timeout") + 1
    )


def test_a_deletion_counts_its_outcome_and_its_call(alice_client, api_key, sandbox, metrics_on):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    alice_client.get(reverse("vms:list"))
    before = scrape()

    response = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]), {"confirm": vm["vmName"]}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    again = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]), {"confirm": vm["vmName"]}, HTTP_HX_REQUEST="true"
    )
    assert again.status_code == 400  # Fluence already accepted it: refused, nothing sent
    after = scrape()

    actions = "fluence_portal_actions_total"
    assert after.value(actions, action="vm_delete", outcome="succeeded") == (
        before.value(actions, action="vm_delete", outcome="succeeded") + 1
    )
    assert after.value(actions, action="vm_delete", outcome="refused") == (
        before.value(actions, action="vm_delete", outcome="refused") + 1
    )
    assert upstream_calls(after, sandbox, operation="delete", outcome="200") == (
        upstream_calls(before, sandbox, operation="delete", outcome="200") + 1
    )
    assert vm["id"] not in after.text and vm["id"].lower() not in after.text  # never a VM id in a label


def test_a_deletion_by_someone_without_the_role_counts_as_not_allowed(
    other_user, api_key, sandbox, metrics_on
):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    row = next(
        row for row in services.selectors.vms_for_user(user=api_key.owner).rows if row.vm.id == vm["id"]
    )
    before = scrape()

    with pytest.raises(services.NotAllowed):
        services.vm_delete(
            user=other_user,
            api_key=api_key,
            vm=row.vm,
            meta=services.RequestMeta("mallory", str(other_user.pk), None, "", ""),
        )
    after = scrape()

    actions = "fluence_portal_actions_total"
    assert after.value(actions, action="vm_delete", outcome="not_allowed") == (
        before.value(actions, action="vm_delete", outcome="not_allowed") + 1
    )


def test_sign_in_failures_and_rate_limit_refusals_are_counted(client, user, settings, metrics_on):
    settings.LOGIN_RATE_LIMIT = (2, 300)
    before = scrape()

    for _ in range(3):
        client.post(reverse("login"), {"username": "alice", "password": "not-her-password-9"})
    after = scrape()

    failures = "fluence_portal_sign_in_failures_total"
    refusals = "fluence_portal_rate_limit_refusals_total"
    assert after.value(failures, method="password") == before.value(failures, method="password") + 2
    assert after.value(refusals, scope="login") == before.value(refusals, scope="login") + 1


def test_a_refresh_that_waits_on_another_callers_call_counts_a_single_flight_wait(metrics_on):
    holder, waiter = resilience.SingleFlight(key_id=991), resilience.SingleFlight(key_id=991)
    assert holder.acquire() and not waiter.acquire()
    before = scrape()

    answered = threading.Timer(0.05, holder.release)
    answered.start()
    waiter.wait_for(lambda: None)
    answered.join()
    after = scrape()

    waits = "fluence_portal_single_flight_waits_total"
    assert after.value(waits) == before.value(waits) + 1


# --- accounts -----------------------------------------------------------------------------------------------


def test_account_gauges_only_with_metrics_include_accounts(
    alice_client, alice_key, sandbox, settings, metrics_on
):
    alice_client.get(reverse("vms:list"))  # the shared cache now holds the account's list

    assert not {name for name in scrape().names() if name.startswith("fluence_portal_account_")}

    settings.METRICS_INCLUDE_ACCOUNTS = True
    scraped = scrape()

    vms = sandbox.state.vms_for(ALICE_KEY)
    labels = {"key_id": str(alice_key.pk), "key_label": "Production"}
    active = sum(vm["status"] == "ACTIVE" for vm in vms)
    assert active and scraped.value("fluence_portal_account_vms", **labels, status="active") == active
    assert sum(v for (name, _), v in scraped.items() if name == "fluence_portal_account_vms") == len(vms)
    assert scraped.value("fluence_portal_account_cost_per_day", **labels, currency="USDC") > 0
    assert ("fluence_portal_account_data_age_seconds", tuple(sorted(labels.items()))) in scraped
    # Key labels and ids, never the secret nor any part of it beyond what the page shows.
    assert ALICE_KEY not in scraped.text


def test_account_gauges_never_call_fluence(alice_key, sandbox, settings, metrics_on):
    settings.METRICS_INCLUDE_ACCOUNTS = True
    sandbox.state.reset_counts()

    scraped = scrape()

    assert sandbox.state.request_count() == 0
    assert not {name for name in scraped.names() if name.startswith("fluence_portal_account_vms")}


# --- labels -------------------------------------------------------------------------------------------------


EXPECTED_OPERATIONS = {
    # (method, path, asks for one VM per page, operation)
    ("GET", "/vms/v2", False, "list"),
    ("DELETE", "/vms/v3", False, "delete"),  # the baseline's, and generation A's
    ("GET", "/vms/v3", False, "list"),
    ("GET", "/v2/vms", True, "probe"),
    ("GET", "/v2/vms", False, "list"),  # the first page and the ones after it
    ("GET", "/v2/vms/<id>", False, "get"),
    ("POST", "/v2/vms/<id>/terminate", False, "delete"),
    ("GET", "/v1/clusters", False, "locations"),
    ("GET", "/v1/datacenters", False, "locations"),
    ("GET", "/v2/users/balances", False, "balance"),
}


def test_each_upstream_call_has_a_fixed_operation_name(sandbox, monkeypatch):
    """Every request each generation's adapter sends names what it is for; the label never holds an id."""
    from vms.fluence.client import FluenceClient

    sent = []
    send = FluenceClient.send

    def recording(self, request, *args, **kwargs):
        sent.append(request)
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(FluenceClient, "send", recording)
    sandbox.state.configure_account("sbx_b_operations_01", vm_count=150)  # two pages of 100
    for secret, generation in (
        ("sbx_operations_00", "baseline"),
        ("sbx_a_operations_1", "a"),
        ("sbx_b_operations_01", "b"),
    ):
        client = FluenceClient(base_url=sandbox.url, api_key=secret, generation=generation)
        client.probe()
        vm = next(vm for vm in client.list_vms() if vm.can_terminate)
        if client.adapter.can_get_vm:
            client.get_vm(vm.id)
        client.delete_vm(vm.id)

    def shape(request):
        path = request.path
        for vm_id in (part for part in path.split("/") if len(part) == 36):
            path = path.replace(vm_id, "<id>")
        return (request.method, path, request.params == {"perPage": "1"}, request.operation)

    assert {shape(request) for request in sent} == EXPECTED_OPERATIONS


@pytest.mark.parametrize(
    ("logged", "outcome"),
    [
        ("200", "200"),
        ("429", "429"),
        ("deadline", "timeout"),
        ("read timeout", "timeout"),
        ("connect timeout", "timeout"),
        ("connection refused", "connection_error"),
        ("connection error", "connection_error"),
        ("too large", "too_large"),
        ("ChunkedEncodingError", "error"),
        ("?", "error"),
    ],
)
def test_each_upstream_outcome_has_a_bounded_name(logged, outcome):
    assert metrics.upstream_outcome(logged) == outcome


def test_a_base_url_off_the_allowlist_is_labelled_other(settings):
    settings.FLUENCE_API_URLS = ["https://api.fluence.dev"]

    assert metrics.base_url_label("https://api.fluence.dev") == "https://api.fluence.dev"
    assert metrics.base_url_label("http://169.254.169.254") == "other"


def test_make_api_key_is_counted_as_an_add(user, sandbox, metrics_on):
    before = scrape()

    make_api_key(user, sandbox, secret="sbx_metrics_factory_01", label="Counted", vm_count=1)
    with pytest.raises(services.ValidationError):
        make_api_key(user, sandbox, secret="sbx_metrics_factory_01", label="Counted")
    after = scrape()

    actions = "fluence_portal_actions_total"
    for outcome in ("succeeded", "invalid"):
        assert after.value(actions, action="apikey_add", outcome=outcome) == (
            before.value(actions, action="apikey_add", outcome=outcome) + 1
        )


def test_vm_actions_count_their_outcomes_and_calls(user, sandbox, metrics_on):
    from tests.factories import meta_for
    from vms import selectors

    secret = "sbx_b_metrics_actions_01"
    sandbox.state.configure_account(secret, vm_count=6)
    api_key = make_api_key(user, sandbox, secret=secret, label="Actions")
    vm_id = next(vm for vm in sandbox.state.vms_for(secret) if "restart" in vm["allowedActions"])["id"]
    vm = selectors.vm_for_user(user=user, key_id=api_key.pk, vm_id=vm_id).vm
    before = scrape()

    vm_actions.vm_rename(user=user, api_key=api_key, vm=vm, name="metric-name", meta=meta_for(user))
    with pytest.raises(services.ValidationError):
        vm_actions.vm_rename(user=user, api_key=api_key, vm=vm, name="Not Valid", meta=meta_for(user))
    vm_actions.vm_restart(user=user, api_key=api_key, vm=vm, meta=meta_for(user))
    after = scrape()

    actions = "fluence_portal_actions_total"
    for action, outcome in (
        ("vm_rename", "succeeded"),
        ("vm_rename", "invalid"),
        ("vm_restart", "succeeded"),
    ):
        assert after.value(actions, action=action, outcome=outcome) == (
            before.value(actions, action=action, outcome=outcome) + 1
        ), (action, outcome)
    for operation in ("rename", "restart"):
        calls = {"operation": operation, "outcome": "200", "generation": "b"}
        assert upstream_calls(after, sandbox, **calls) == upstream_calls(before, sandbox, **calls) + 1
