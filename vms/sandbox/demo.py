"""The demo accounts every SandboxState starts with (used by ``make run``, browser tests and benchmarks).

Sandbox keys are fake and harmless; they still never appear in logs.
"""

from __future__ import annotations

from typing import Any

#: key -> spec. ``user`` and ``label`` describe who the key belongs to in the demo; the other fields
#: are the arguments of ``SandboxState.configure_account``.
DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "sbx_demo_alice_production": {
        "user": "alice",
        "label": "Production",
        "vm_count": 14,
        "include_example": True,
        "revoked": False,
    },
    "sbx_demo_alice_staging": {
        "user": "alice",
        "label": "Staging",
        "vm_count": 6,
        "include_example": False,
        "revoked": False,
    },
    "sbx_demo_bob_research": {
        "user": "bob",
        "label": "Research",
        "vm_count": 8,
        "include_example": False,
        "revoked": False,
    },
    "sbx_demo_revoked_0001": {
        "user": None,
        "label": "Revoked",
        "vm_count": 3,
        "include_example": False,
        "revoked": True,
    },
}

#: demo user name -> the keys that user owns (the revoked key belongs to nobody).
DEMO_USERS: dict[str, list[str]] = {
    "alice": ["sbx_demo_alice_production", "sbx_demo_alice_staging"],
    "bob": ["sbx_demo_bob_research"],
}

#: key -> human label ("Production", "Staging", "Research", "Revoked").
DEMO_LABELS: dict[str, str] = {key: spec["label"] for key, spec in DEMO_ACCOUNTS.items()}

CONFIGURE_FIELDS = ("vm_count", "include_example", "revoked")


def configure_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``configure_account`` keyword arguments of a demo spec."""
    return {name: spec[name] for name in CONFIGURE_FIELDS if name in spec}
