"""Gauges read at scrape time from the shared cache: each API's circuit, and (METRICS_INCLUDE_ACCOUNTS) the
VMs and cost per day of every key. Never calls Fluence; every instance reports the same values."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from vms import resilience, vm_cache
from vms.fluence.models import StatusClass, Vm
from vms.models import ApiKey

CIRCUIT_STATES = ("closed", "open", "half_open")


class CircuitCollector:
    """The circuit of every allowlisted API base URL, as the shared cache holds it."""

    def collect(self):
        state = GaugeMetricFamily(
            "fluence_portal_circuit_state",
            "The circuit of an API base URL: 1 for its current state (closed, open, half_open), 0 otherwise.",
            labels=["base_url", "state"],
        )
        failures = GaugeMetricFamily(
            "fluence_portal_circuit_failures",
            "Consecutive failures counted against an API base URL's circuit.",
            labels=["base_url"],
        )
        for base_url in settings.FLUENCE_API_URLS:
            current, count = resilience.circuit_snapshot(base_url)
            for name in CIRCUIT_STATES:
                state.add_metric([base_url, name], 1 if name == current else 0)
            failures.add_metric([base_url], count)
        yield state
        yield failures


class AccountCollector:
    """VMs by status, cost per day per currency and the age of the data, for every key whose list the
    shared cache holds. Only with METRICS_INCLUDE_ACCOUNTS: the labels name accounts (the key's label and id,
    never its secret)."""

    def collect(self):
        if not settings.METRICS_INCLUDE_ACCOUNTS:
            return
        vms = GaugeMetricFamily(
            "fluence_portal_account_vms",
            "VMs of an account (API key) by status, from the last list Fluence answered.",
            labels=["key_id", "key_label", "status"],
        )
        cost = GaugeMetricFamily(
            "fluence_portal_account_cost_per_day",
            "What the account's VMs that are not ended cost per day, per currency (USD, USDC: never summed).",
            labels=["key_id", "key_label", "currency"],
        )
        age = GaugeMetricFamily(
            "fluence_portal_account_data_age_seconds",
            "Seconds since Fluence last answered the account's list.",
            labels=["key_id", "key_label"],
        )
        now = timezone.now()
        for key_id, label in ApiKey.objects.order_by("pk").values_list("pk", "label"):
            fetched = vm_cache.last_good(key_id)
            if fetched is None:
                continue
            names = [str(key_id), label]
            for status, count in sorted(Counter(status_name(vm) for vm in fetched.answer.vms).items()):
                vms.add_metric([*names, status], count)
            for currency, per_day in sorted(cost_per_day(fetched.answer.vms).items()):
                cost.add_metric([*names, currency], float(per_day))
            age.add_metric(names, max(0.0, (now - fetched.fetched_at).total_seconds()))
        yield vms
        yield cost
        yield age


def status_name(vm: Vm) -> str:
    """The VM's normalised status ("active", "launching"), or "unknown" for one the portal does not know: the
    label stays bounded whatever Fluence sends."""
    return "unknown" if vm.status.css_class is StatusClass.UNKNOWN else vm.status.key


def cost_per_day(vms) -> dict[str, Decimal]:
    """Per currency, what the VMs that are not ended cost per day (VMs without a price add nothing)."""
    totals: dict[str, Decimal] = {}
    for vm in vms:
        if vm.status.is_ended or vm.cost_per_day is None:
            continue
        totals[vm.currency] = totals.get(vm.currency, Decimal(0)) + vm.cost_per_day
    return totals
