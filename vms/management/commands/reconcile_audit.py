"""`reconcile_audit`: the name of `reconcile_deletions` now that it settles every VM action (both run it)."""

from vms.management.commands.reconcile_deletions import Command  # noqa: F401 (the command itself)
