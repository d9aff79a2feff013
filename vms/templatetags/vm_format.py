"""Template filters for VM values, thin wrappers around vms.display."""

from django import template
from django.utils import timezone

from vms import display

register = template.Library()


@register.filter
def usdc(value):
    return display.format_usdc(value)


@register.filter
def usdc_short(value):
    return display.format_usdc_short(value)


@register.filter
def mib(value):
    return display.format_mib(value)


@register.filter
def country_name(code):
    return display.country_name(code)


@register.filter
def utc(value):
    return display.format_utc(value)


@register.filter
def age(value):
    return display.format_age(value, timezone.now())


@register.filter
def relative(value):
    return display.format_relative(value, timezone.now())


@register.filter
def resource_label(resource):
    return display.resource_label(resource)


@register.simple_tag
def city_name(code, country=None):
    return display.city_name(code, country)
