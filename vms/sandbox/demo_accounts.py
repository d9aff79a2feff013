"""The demo accounts every SandboxState starts with (used by ``make run``, browser tests and benchmarks).

Sandbox keys are fake and harmless; they still never appear in logs.
"""

from __future__ import annotations

from typing import Any

#: key -> spec. ``user`` and ``label`` describe who the key belongs to in the demo; the other fields
#: are the arguments of ``SandboxState.configure_account``. Alice's keys speak all three generations of
#: the Fluence API, so that the demo shows the portal reading each.
DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "sbx_demo_alice_production": {
        "user": "alice",
        "label": "Production",
        "vm_count": 14,
        "include_example": True,
        "revoked": False,
        "generation": "baseline",
    },
    "sbx_demo_alice_staging": {
        "user": "alice",
        "label": "Staging",
        "vm_count": 6,
        "include_example": False,
        "revoked": False,
        "generation": "a",
    },
    "sbx_b_demo_alice_cloud": {
        "user": "alice",
        "label": "Cloud",
        "vm_count": 9,
        "include_example": False,
        "revoked": False,
        "generation": "b",
    },
    "sbx_demo_bob_research": {
        "user": "bob",
        "label": "Research",
        "vm_count": 8,
        "include_example": False,
        "revoked": False,
        "generation": "baseline",
    },
    "sbx_demo_revoked_0001": {
        "user": None,
        "label": "Revoked",
        "vm_count": 3,
        "include_example": False,
        "revoked": True,
        "generation": "baseline",
    },
}

#: demo user name -> the keys that user owns (the revoked key belongs to nobody).
DEMO_USERS: dict[str, list[str]] = {
    "alice": ["sbx_demo_alice_production", "sbx_demo_alice_staging", "sbx_b_demo_alice_cloud"],
    "bob": ["sbx_demo_bob_research"],
}

#: key -> human label ("Production", "Staging", "Cloud", "Research", "Revoked").
DEMO_LABELS: dict[str, str] = {key: spec["label"] for key, spec in DEMO_ACCOUNTS.items()}

CONFIGURE_FIELDS = ("vm_count", "include_example", "revoked", "generation")


def configure_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``configure_account`` keyword arguments of a demo spec."""
    return {name: spec[name] for name in CONFIGURE_FIELDS if name in spec}
