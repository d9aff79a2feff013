"""The vms application: Fluence VMs, the keys that reach them, and the deletion audit trail."""

from django.apps import AppConfig


class VmsConfig(AppConfig):
    name = "vms"
    verbose_name = "Fluence VMs"

    def ready(self) -> None:
        from vms import table_version

        table_version.connect_signals()
