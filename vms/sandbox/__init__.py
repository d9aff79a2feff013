"""A faithful local Fluence API for demos, browser tests and benchmarks (standard library only)."""

from .data import EXAMPLE_VM, generate_vms
from .demo_accounts import DEMO_ACCOUNTS, DEMO_LABELS, DEMO_USERS
from .server import SandboxServer
from .state import Faults, SandboxState, fingerprint

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_LABELS",
    "DEMO_USERS",
    "EXAMPLE_VM",
    "Faults",
    "SandboxServer",
    "SandboxState",
    "fingerprint",
    "generate_vms",
]
