"""The vms application: Fluence VMs, the keys that reach them, and the deletion audit trail."""

from django.apps import AppConfig


class VmsConfig(AppConfig):
    name = "vms"
    verbose_name = "Fluence VMs"
