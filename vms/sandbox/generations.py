"""The generations of the Fluence API a sandbox account can speak, and which one a key speaks by default."""

from __future__ import annotations

BASELINE = "baseline"  # GET /vms/v2, DELETE /vms/v3 (fluence-api.md §1)
GENERATION_A = "a"  # the baseline plus GET /vms/v3 (§2)
GENERATION_B = "b"  # /v2/vms and friends, no /vms/* at all (§4)
GENERATIONS = (BASELINE, GENERATION_A, GENERATION_B)

# Tests and demos pick a generation by naming the key: "sbx_b_…" speaks generation B.
_KEY_PREFIXES = (("sbx_b_", GENERATION_B), ("sbx_a_", GENERATION_A))


def generation_of_key(key: str) -> str:
    """The generation a new account of ``key`` speaks unless told otherwise."""
    for prefix, generation in _KEY_PREFIXES:
        if key.startswith(prefix):
            return generation
    return BASELINE
