"""Text from Fluence is escaped everywhere it is shown, and only http(s) addresses become links."""

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from tests.hostile_upstream import (
    IMG,
    JS_URL,
    LINKED_VM_ID,
    NAMED_VM_ID,
    SCRIPT,
    SVG,
    WEB_URL,
    HostileApi,
    add_hostile_vms,
)
from vms import services
from vms.templatetags.safe_urls import web_url

HOSTILE_KEY = "sbx_hostile_escaping_01"


@pytest.fixture
def hostile(alice_client, user, sandbox, settings):
    sandbox.state.configure_account(HOSTILE_KEY, vm_count=1)
    add_hostile_vms(sandbox.state, HOSTILE_KEY)
    api_key = services.apikey_create(
        owner=user, label="Hostile", secret=HOSTILE_KEY, base_url=sandbox.url, verify=False
    )
    return alice_client, api_key


def _assert_inert(html: str) -> None:
    for payload in (SCRIPT, IMG, SVG, "<svg/onload"):
        assert payload not in html
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE))
    assert not re.search(r"<(script|img|svg)\b[^>]*(onerror|onload|__pwned)", html, re.IGNORECASE)
    assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", html, re.IGNORECASE)


def test_the_list_shows_hostile_names_as_text(hostile):
    client, _ = hostile

    html = client.get(reverse("vms:list")).text

    _assert_inert(html)
    assert escape(f"evil {SCRIPT}{IMG}") in html


def test_the_detail_page_shows_every_hostile_field_as_text(hostile):
    client, api_key = hostile

    html = client.get(reverse("vms:detail", args=[api_key.pk, NAMED_VM_ID])).text

    _assert_inert(html)
    for text in (f"evil {SCRIPT}{IMG}", SCRIPT, IMG, SVG, JS_URL):
        assert escape(text) in html
    # The javascript: image is shown, but not as a link.
    assert f'<code class="wrap">{escape(JS_URL)}</code>' in html


def test_an_http_image_address_stays_a_link_with_its_text_escaped(hostile):
    client, api_key = hostile

    html = client.get(reverse("vms:detail", args=[api_key.pk, LINKED_VM_ID])).text

    _assert_inert(html)
    assert f'href="{escape(WEB_URL)}"' in html


def test_an_upstream_error_message_is_shown_as_text(alice_client, user, settings):
    with HostileApi() as api:
        settings.FLUENCE_API_URLS = [*settings.FLUENCE_API_URLS, api.url]
        services.apikey_create(
            owner=user, label="Refused", secret="sbx_refused_by_hostile", base_url=api.url, verify=False
        )

        html = alice_client.get(reverse("vms:list")).text

    _assert_inert(html)
    assert escape(HostileApi.message) in html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://cloud-images.ubuntu.com/jammy.img", "https://cloud-images.ubuntu.com/jammy.img"),
        ("http://mirror.example/x.img", "http://mirror.example/x.img"),
        ("HTTPS://EXAMPLE.COM/x", "HTTPS://EXAMPLE.COM/x"),
        ("javascript:alert(1)", ""),
        ("JaVaScRiPt:alert(1)", ""),
        (" javascript:alert(1)", ""),
        ("java\tscript:alert(1)", ""),
        ("data:text/html,<script>alert(1)</script>", ""),
        ("vbscript:msgbox", ""),
        ("//evil.example/x", ""),
        ("/relative/path.img", ""),
        ("https:///no-host", ""),
        ("http://[::1", ""),
        (None, ""),
    ],
)
def test_only_absolute_web_addresses_become_links(value, expected):
    assert web_url(value) == expected
