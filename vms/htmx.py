"""htmx in one place: whether a request wants a fragment, and responses that say they depend on it."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render as django_render
from django.utils.cache import patch_vary_headers


def is_partial(request: HttpRequest) -> bool:
    """A fragment is wanted: htmx asked, and not as a boosted whole-page navigation."""
    return bool(request.htmx) and not request.htmx.boosted


def varies(response: HttpResponse) -> HttpResponse:
    """Mark a response whose body depends on HX-Request, so that no cache serves a fragment as a page."""
    patch_vary_headers(response, ["HX-Request"])
    return response


def render(
    request: HttpRequest, template: str, context: dict, *, partial: str | None = None, status: int = 200
) -> HttpResponse:
    """The whole page, or `partial` (a template or `template#partial`) when htmx asks for a fragment."""
    chosen = partial if partial is not None and is_partial(request) else template
    return varies(django_render(request, chosen, context, status=status))
