"""Small factories for what many tests make: API keys saved as the portal saves them, on the sandbox."""

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
    """The request facts an audit row copies, for a person acting outside a request (service tests)."""
    return RequestMeta(
        actor_username=user.get_username(),
        actor_id=str(user.pk),
        client_ip=None,
        user_agent="t",
        request_id="",
    )


def deletion_rows():
    """The audit rows of VM deletions (the trail also holds the key events the factories' keys write)."""
    from vms.models import DeletionEvent

    return DeletionEvent.objects.filter(action=DeletionEvent.Action.VM_DELETE)
