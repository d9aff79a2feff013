"""Template filters for VM values: the formatting helpers of vms.display, under short names."""

from django import template
from django.utils import timezone

from vms import display

register = template.Library()

register.filter("usdc", display.format_usdc)
register.filter("usdc_short", display.format_usdc_short)
register.filter("mib", display.format_mib)
register.filter("country_name", display.country_name)
register.filter("utc", display.format_utc)
register.filter("resource_label", display.resource_label)
register.simple_tag(display.city_name, name="city_name")


@register.filter
def age(value):
    return display.format_age(value, timezone.now())


@register.filter
def relative(value):
    return display.format_relative(value, timezone.now())
