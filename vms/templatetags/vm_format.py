"""Template filters for VM values: the formatting helpers of vms.display, under short names."""

import json

from django import template
from django.utils import timezone
from django.utils.html import format_html

from vms import audit, display, vm_table
from vms.fluence.client import generation_label

register = template.Library()

register.filter("usdc", display.format_usdc)
register.filter("usdc_short", display.format_usdc_short)
register.filter("money", display.format_money)
register.filter("exact", display.format_exact)
register.filter("mib", display.format_mib)
register.filter("gb", display.format_gb)
register.filter("country_name", display.country_name)
register.filter("utc", display.format_utc)
register.filter("resource_label", display.resource_label)
register.filter("resource_name", display.resource_name)
register.filter("hardware_facts", display.hardware_facts)
register.filter("generation_label", generation_label)
register.filter("unreadable_fields", vm_table.unreadable_fields)
register.filter("unreadable_vms", vm_table.unreadable_vms)
register.simple_tag(display.city_name, name="city_name")
register.filter("intent_sentence", audit.intent_sentence)

RAW_VALUE_LIMIT = 200


@register.filter
def age(value):
    return display.format_age(value, timezone.now())


@register.filter
def relative(value):
    return display.format_relative(value, timezone.now())


@register.filter
def pretty_json(value) -> str:
    """Decoded JSON, indented for people (escaped by the template like any text)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return "(Fluence's object cannot be shown as JSON)"


def _raw_value(raw, path: str) -> str:
    """What Fluence sent at a dotted path of its object, as short JSON text."""
    value = raw
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return "(not sent)"
        value = value[part]
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= RAW_VALUE_LIMIT else text[: RAW_VALUE_LIMIT - 1] + "…"


@register.simple_tag
def unreadable_field(vm, *names) -> str:
    """For a field of `vm` Fluence sent unreadably: "unreadable" (the reason as its title) and the value as
    it was sent. Empty when every named field could be read, so a template can fall back to the value."""
    item = vm.unreadable_field(*names) if vm is not None else None
    if item is None:
        return ""
    return format_html(
        '<span class="unreadable" title="{}">unreadable</span> <code class="raw-value">{}</code>',
        item.reason,
        _raw_value(vm.raw, item.field),
    )


@register.simple_tag
def raw_value(vm, path: str) -> str:
    return _raw_value(vm.raw, path)


@register.filter
def any_billed_per_second(selected) -> bool:
    """Whether a bulk selection ((row, api_key, epoch), …) holds a VM of today's API."""
    return any(row.vm.billed_per_second for row, *_ in selected)


@register.filter
def any_epoch_billed(selected) -> bool:
    """Whether a bulk selection holds a VM of the 2025 APIs, billed by the epoch."""
    return any(not row.vm.billed_per_second for row, *_ in selected)
