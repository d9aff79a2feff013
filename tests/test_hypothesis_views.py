"""Arbitrary query strings on the VM list, its htmx partial and the audit page never produce a 500."""

from urllib.parse import urlencode

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vms import services

# The parameters the pages understand, and a few they do not.
NAMES = [
    "q",
    "status",
    "account",
    "country",
    "sort",
    "page",
    "actor",
    "outcome",
    "from",
    "to",
    "vm",
    "attempt",
]

values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),  # any unicode, NUL and controls included
    st.sampled_from(["-name", "name", "-price", "0", "-1", "999999999999", "1e9", "\x00", "../../", "%00"]),
    st.integers().map(str),
    st.builds(lambda char, size: char * size, st.characters(), st.integers(1000, 20_000)),  # huge values
)
pairs = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=10)), values), max_size=8)
# Raw bytes too: broken percent-escapes and invalid UTF-8 that no urlencode would produce.
raw_query = st.binary(max_size=300).map(lambda data: data.decode("latin-1"))

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    # The client, user and sandbox are set up once per test and only read from: safe to share.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def pages(alice_client, user, sandbox):
    services.apikey_create(
        owner=user, label="Production", secret="sbx_demo_alice_production", base_url=sandbox.url, verify=False
    )
    assert 'id="vm-table"' in alice_client.get(reverse("vms:list")).text  # a real table, not the empty page
    return alice_client


def _assert_answers(client, url: str, query: str, **headers) -> None:
    response = client.get(url, QUERY_STRING=query, headers=headers)
    assert response.status_code < 500, (url, query)


@SETTINGS
@given(params=pairs)
def test_the_vm_list_and_its_partial_answer_any_parameters(pages, params):
    query = urlencode(params)
    _assert_answers(pages, reverse("vms:list"), query)
    _assert_answers(pages, reverse("vms:list"), query, **{"HX-Request": "true", "HX-Target": "vm-table"})


@SETTINGS
@given(params=pairs)
def test_the_audit_page_and_its_partial_answer_any_parameters(pages, params):
    query = urlencode(params)
    _assert_answers(pages, reverse("vms:audit"), query)
    _assert_answers(pages, reverse("vms:audit"), query, **{"HX-Request": "true"})


@SETTINGS
@given(query=raw_query)
def test_raw_query_strings_never_break_a_page(pages, query):
    for name in ("vms:list", "vms:audit"):
        _assert_answers(pages, reverse(name), query)
