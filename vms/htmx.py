"""htmx in one place: whether a request wants a fragment, and responses that say they depend on it."""

from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.template.context import make_context
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
    return varies(HttpResponse(_render_to_string(chosen, context, request), status=status))


def _render_to_string(template: str, context: dict, request: HttpRequest) -> str:
    """As Django's render_to_string, except that what the page is rendered from is freed with the page.

    Django's template context and each of its layers point at each other: a page's data (thousands of VMs
    on a large account) would wait for the cyclic garbage collector, whose passes over it cost a later
    request several milliseconds. Emptying the context once rendered breaks that cycle."""
    compiled = loader.get_template(template)
    rendering = make_context(context, request, autoescape=compiled.backend.engine.autoescape)
    try:
        return compiled.template.render(rendering)
    finally:
        rendering.dicts.clear()
