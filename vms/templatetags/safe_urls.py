"""Links built from upstream text: only plain web addresses become links, anything else stays text."""

from urllib.parse import urlsplit

from django import template

register = template.Library()


@register.filter
def web_url(value: object) -> str:
    """The value if it is an absolute http(s) URL; "" for `javascript:`, `data:` and everything else."""
    if not isinstance(value, str) or any(ord(char) < 0x21 for char in value):
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    return value if parts.scheme.lower() in ("http", "https") and parts.netloc else ""
