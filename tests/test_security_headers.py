"""The Content Security Policy and the other security headers, and templates that need nothing inline."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

EXPECTED_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
}


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {directive[0]: directive[1:] for directive in directives}


@pytest.mark.parametrize("signed_in", [False, True])
def test_every_page_carries_the_strict_policy(client, user, signed_in):
    if signed_in:
        client.force_login(user)
    url = reverse("vms:list") if signed_in else reverse("login")

    response = client.get(url)

    assert response.status_code == 200
    assert _policy(response) == EXPECTED_POLICY
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header and "*" not in header
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_htmx_is_configured_to_run_nothing_it_receives(client):
    page = client.get(reverse("login")).text
    meta = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'>', page).group(1)
    config = json.loads(meta)

    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["historyCacheSize"] == 0
    assert config["selfRequestsOnly"] is True


class _InlineFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, _ in attrs:
            # style= and on*= are refused by the CSP; hx-on and hx-vars need eval, which htmx may not use.
            if name == "style" or name.startswith(("on", "hx-on", "data-hx-on", "hx-vars")):
                self.found.append(f"<{tag} {name}=…>")
        if tag == "script" and not dict(attrs).get("src"):
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> element")


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda path: path.name)
def test_no_template_needs_an_inline_script_style_or_handler(template):
    finder = _InlineFinder()
    # Template tags are blanked so that the HTML parser sees only the markup.
    finder.feed(re.sub(r"{%.*?%}|{{.*?}}", "x", template.read_text(), flags=re.DOTALL))

    assert finder.found == []


def test_the_app_script_builds_no_code_or_markup_from_strings():
    script = (TEMPLATES.parent / "static" / "app.js").read_text()

    assert "eval(" not in script and "new Function" not in script and "innerHTML" not in script
