"""Small factories for what many tests make: API keys saved as the portal saves them, on the sandbox."""

import dataclasses

from vms import services
from vms.request_meta import RequestMeta

# The sandbox accounts of the shared key fixtures in tests/conftest.py (a key shows its last 4 characters).
OPS_KEY = "sbx_ops_team_account"  # last four "ount"; made afresh, with ten VMs, for every test
ALICE_KEY = "sbx_demo_alice_production"  # a demo account, preloaded in the sandbox
MALLORY_KEY = "sbx_mallory_account_01"


def make_api_key(
    owner, sandbox, *, secret, label="Production", vm_count=None, include_example=False, **options
):
    """`owner`'s key `label` for the sandbox account `secret`, saved through the service the add form uses.

    With `vm_count`, the account is (re)made first with that many VMs (the documented example VM first with
    `include_example`); else the sandbox serves whatever the account holds. `options` go to the service
    (`verify=False` saves without asking the sandbox, `generation=` forces an API generation).
    """
    if vm_count is not None:
        sandbox.state.configure_account(secret, vm_count=vm_count, include_example=include_example)
    return services.apikey_create(owner=owner, label=label, secret=secret, base_url=sandbox.url, **options)


def meta_for(user) -> RequestMeta:
    """The request facts an audit row copies, for a person acting outside a request (service tests): as the
    services make them (RequestMeta.of_user), with a user agent to tell the tests' rows apart."""
    return dataclasses.replace(RequestMeta.of_user(user), user_agent="t")


def deletion_rows():
    """The audit rows of VM deletions (the trail also holds the key events the factories' keys write)."""
    from vms.models import DeletionEvent

    return DeletionEvent.objects.filter(action=DeletionEvent.Action.VM_DELETE)


def make_team(owner, sandbox, django_user_model, *, secrets: dict[str, str], vm_count: int, label: str):
    """A key per sandbox account of `secrets` (generation -> secret, `vm_count` VMs each) owned by `owner`
    and shared with an operators' and a viewers' group; the people of each role: owner, operator (otto),
    viewer (vera) and stranger (sam)."""
    from django.contrib.auth.models import Group

    keys = {}
    for generation, secret in secrets.items():
        sandbox.state.configure_account(secret, vm_count=vm_count)
        keys[generation] = make_api_key(owner, sandbox, secret=secret, label=f"{label} {generation}")
    operators, viewers = Group.objects.create(name="ops"), Group.objects.create(name="watchers")
    for api_key in keys.values():
        api_key.shares.create(group=operators, role="operator")
        api_key.shares.create(group=viewers, role="viewer")
    people = {"owner": owner}
    for role, name, group in (
        ("operator", "otto", operators),
        ("viewer", "vera", viewers),
        ("stranger", "sam", None),
    ):
        person = django_user_model.objects.create_user(username=name, password=f"{name}-password-1")
        if group is not None:
            person.groups.add(group)
        people[role] = person
    return {"keys": keys, "secrets": secrets, "people": people}


def signed_in(person):
    """A test client signed in as `person`."""
    from django.test import Client

    client = Client()
    client.force_login(person)
    return client


# The sandbox's faults, each with the outcome a write under it must end with (a write is never retried: a
# request that may have reached Fluence is unknown, a refused one failed). With short_timeouts, "timeout"
# outlasts the client.
WRITE_FAULTS = {
    "timeout": ({"latency_ms": 900}, "unknown"),
    "500": ({"error_rate": 1.0, "error_status": 500}, "unknown"),
    "503": ({"error_rate": 1.0, "error_status": 503}, "unknown"),
    "drop": ({"drop": True}, "unknown"),
    "429": ({"rate_limit_retry_after": 40}, "failed"),
}


def short_timeouts(settings) -> None:
    """Client timeouts the sandbox's "timeout" fault (900 ms) outlasts."""
    settings.FLUENCE_READ_TIMEOUT = settings.FLUENCE_CONNECT_TIMEOUT = 0.4
    settings.FLUENCE_TOTAL_TIMEOUT = 1.0
