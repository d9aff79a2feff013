"""VM actions beyond deleting: rename, restart and soft reboot, open ports — which a person is offered on a
VM's page, sending each once (never retried) with an intent row before the call and an outcome row after it,
and settling an attempt whose outcome is unknown from what Fluence lists later.

Who may act is vms.permissions' decision (`can_act_on_vms`), what an API can do its adapter's
(vms.fluence.client); the audit rows and their one-answer-per-attempt rule are the deletions' (vms.services).
"""

import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from vms import metrics, resilience, vm_cache
from vms.fluence.client import ADAPTERS, FluenceClient
from vms.fluence.errors import FluenceError
from vms.fluence.models import Vm
from vms.models import ApiKey, DeletionEvent, is_allowed_api_url
from vms.permissions import can_act_on_vms
from vms.request_meta import RequestMeta
from vms.services import (
    NotAllowed,
    Settlement,
    attempt_settle_once,
    audit_outcome_record,
    audit_snapshot,
    write_outcome_of,
)

logger = logging.getLogger("vms.vm_actions")


@dataclass(frozen=True)
class ActionResult:
    """What came of one VM action: `succeeded`, `failed` or `unknown`, the sentence for the person, and the
    attempt's correlation id (its audit rows)."""

    action: str
    outcome: str
    message: str
    correlation_id: uuid.UUID

    @property
    def succeeded(self) -> bool:
        return self.outcome == DeletionEvent.Outcome.SUCCEEDED


class ActionRefused(Exception):
    """The action was not attempted (nothing sent, nothing audited); the message says why."""


def vm_rename(*, user, api_key: ApiKey, vm: Vm, name: str, meta: RequestMeta) -> ActionResult:
    """Rename one VM at Fluence, audited like a deletion (an intent row before the call, with the names
    before and after, and an outcome row after it) and never retried. NotAllowed (a viewer or a stranger),
    ValidationError (a name this API refuses) and ActionRefused (not now) mean nothing was sent."""
    if not can_act_on_vms(user=user, api_key=api_key):
        metrics.action_counted("vm_rename", "not_allowed")
        raise NotAllowed("You may not rename VMs of this account. Nothing was sent.")
    client = _action_client(api_key, "vm_rename")
    adapter = client.adapter
    if not adapter.can_rename or adapter.name_pattern is None:
        metrics.action_counted("vm_rename", "refused")
        raise ActionRefused(f"The {adapter.label} cannot rename VMs. Nothing was sent.")
    name = (name or "").strip()
    if not adapter.name_pattern.match(name):
        metrics.action_counted("vm_rename", "invalid")
        raise ValidationError(
            {"name": f"A name on the {adapter.label} is {adapter.name_rule}. Nothing was sent."}
        )
    if name == (vm.name or ""):
        metrics.action_counted("vm_rename", "refused")
        raise ActionRefused("The VM already has this name. Nothing was sent.")
    return _vm_action_audited(
        client=client,
        api_key=api_key,
        vm=vm,
        meta=meta,
        action=DeletionEvent.Action.VM_RENAME,
        details={"before": {"name": vm.name or ""}, "after": {"name": name}},
        call=lambda: client.rename_vm(vm.id, name),
        done="Fluence renamed the VM.",
    )


RESTART_ACTIONS = {False: "restart", True: "softReboot"}  # the names in Fluence's allowedActions


def vm_restart(*, user, api_key: ApiKey, vm: Vm, soft: bool = False, meta: RequestMeta) -> ActionResult:
    """Restart (or soft-reboot) one VM on today's API, where Fluence lists the action among the VM's
    allowedActions; audited and never retried. NotAllowed and ActionRefused mean nothing was sent. On success
    the VM shows Fluence's transitional status (restarting) on the next look, which polls faster."""
    action = DeletionEvent.Action.VM_SOFT_REBOOT if soft else DeletionEvent.Action.VM_RESTART
    verb = "soft-reboot" if soft else "restart"
    if not can_act_on_vms(user=user, api_key=api_key):
        metrics.action_counted(action, "not_allowed")
        raise NotAllowed(f"You may not {verb} VMs of this account. Nothing was sent.")
    client = _action_client(api_key, action)
    if not client.adapter.can_restart:
        metrics.action_counted(action, "refused")
        raise ActionRefused(f"The {client.adapter.label} cannot {verb} VMs. Nothing was sent.")
    if vm.allowed_actions is not None and RESTART_ACTIONS[soft] not in vm.allowed_actions:
        metrics.action_counted(action, "refused")
        raise ActionRefused(
            f"Fluence does not allow to {verb} this VM while it is {vm.status.label.lower()}. "
            "Nothing was sent."
        )
    return _vm_action_audited(
        client=client,
        api_key=api_key,
        vm=vm,
        meta=meta,
        action=action,
        details={"status_before": vm.status.raw},
        call=lambda: client.restart_vm(vm.id, soft=soft),
        done=f"Fluence accepted the {verb}; the VM shows it as it goes.",
    )


PORT_PROTOCOLS = ("tcp", "udp", "sctp")
PORTS_LIMIT = 100
SSH = {"port": 22, "protocol": "tcp"}
_PORT_ENTRY = re.compile(r"^(\d{1,5})(?:/([a-z]+))?$")


class SshLockoutUnconfirmed(Exception):
    """The new list closes 22/tcp and the person has not confirmed it: nothing was sent. `vm`: the VM, for
    the confirmation."""

    def __init__(self, message: str, *, vm: Vm) -> None:
        super().__init__(message)
        self.vm = vm


def clean_ports(text: str) -> list[dict]:
    """ "22/tcp, 80, 51820/udp" -> [{port, protocol}, …] in the order given (tcp when no protocol is named),
    each once; ValidationError with what is wrong, and nothing changes."""
    entries = [entry for entry in re.split(r"[\s,;]+", (text or "").strip().lower()) if entry]
    if len(entries) > PORTS_LIMIT:
        raise ValidationError({"ports": f"At most {PORTS_LIMIT} ports. Nothing was sent."})
    ports: list[dict] = []
    for entry in entries:
        found = _PORT_ENTRY.match(entry)
        number = int(found.group(1)) if found else 0
        protocol = (found.group(2) if found else None) or "tcp"
        if not found or not 1 <= number <= 65535 or protocol not in PORT_PROTOCOLS:
            raise ValidationError(
                {
                    "ports": f"“{entry[:30]}” is not a port: write a number from 1 to 65535, optionally with "
                    f"/tcp, /udp or /sctp (e.g. 22/tcp, 51820/udp). Nothing was sent."
                }
            )
        port = {"port": number, "protocol": protocol}
        if port not in ports:
            ports.append(port)
    return ports


def ports_text(ports) -> str:
    """The VM's open ports as the form writes them: "22/tcp, 80/tcp"."""
    return ", ".join(f"{port.port}/{port.protocol}" for port in ports or ())


def vm_ports_set(
    *, user, api_key: ApiKey, vm: Vm, ports: list[dict], ssh_confirmed: bool = False, meta: RequestMeta
) -> ActionResult:
    """Replace a VM's open ports (the 2025 API's `openPorts` replaces the whole list), audited with the list
    before and after, never retried. Closing 22/tcp needs `ssh_confirmed` (SshLockoutUnconfirmed: the person
    may lock themselves out of SSH). NotAllowed and ActionRefused mean nothing was sent."""
    action = DeletionEvent.Action.VM_PORTS
    if not can_act_on_vms(user=user, api_key=api_key):
        metrics.action_counted(action, "not_allowed")
        raise NotAllowed("You may not change the open ports of VMs of this account. Nothing was sent.")
    client = _action_client(api_key, action)
    if not client.adapter.can_set_ports:
        metrics.action_counted(action, "refused")
        raise ActionRefused(f"The {client.adapter.label} cannot change open ports. Nothing was sent.")
    if any(item.field.split(".")[0].split("[")[0] == "ports" for item in vm.unreadable):
        metrics.action_counted(action, "refused")
        raise ActionRefused(
            "The portal could not read the VM's current open ports, and a new list replaces them all. "
            "Nothing was sent."
        )
    before = [{"port": port.port, "protocol": port.protocol} for port in vm.ports or ()]
    if sorted(ports, key=lambda p: (p["port"], p["protocol"])) == sorted(
        before, key=lambda p: (p["port"], p["protocol"])
    ):
        metrics.action_counted(action, "refused")
        raise ActionRefused("These are the VM's open ports already. Nothing was sent.")
    if SSH in before and SSH not in ports and not ssh_confirmed:
        metrics.action_counted(action, "refused")
        raise SshLockoutUnconfirmed(
            "The new list closes 22/tcp: you may lock yourself out of SSH. Confirm to send it anyway.", vm=vm
        )
    return _vm_action_audited(
        client=client,
        api_key=api_key,
        vm=vm,
        meta=meta,
        action=action,
        details={"before": {"ports": before}, "after": {"ports": ports}},
        call=lambda: client.set_ports(vm.id, ports),
        done="Fluence changed the VM's open ports.",
    )


def _action_client(api_key: ApiKey, metric: str) -> FluenceClient:
    if not is_allowed_api_url(api_key.base_url):
        metrics.action_counted(metric, "refused")
        raise ActionRefused(
            f"This key points at {api_key.base_url}, which the administrator no longer allows. "
            "Nothing was sent."
        )
    return FluenceClient(
        base_url=api_key.base_url, api_key=api_key.secret.reveal(), generation=api_key.generation
    )


def _vm_action_audited(
    *,
    client: FluenceClient,
    api_key: ApiKey,
    vm: Vm,
    meta: RequestMeta,
    action: str,
    details: dict,
    call: Callable[[], None],
    done: str,
) -> ActionResult:
    """Send one VM action once, between its intent row (committed first: no transaction here) and its
    outcome row; one at a time per VM and action, across processes; refused while the key cools down."""
    if not client.adapter.is_valid_id(vm.id):
        raise ActionRefused("This VM's id is not one this account's API knows. Nothing was sent.")
    waiting = resilience.cooldown_remaining(key_id=api_key.pk)
    if waiting:
        metrics.action_counted(action, "refused")
        raise ActionRefused(
            f"Fluence asked to slow down for this key (HTTP 429). Nothing was sent; try again in "
            f"{math.ceil(waiting)} s."
        )
    in_flight = f"fluence:acting-now:{action}:{api_key.pk}:{vm.key}"
    seconds = int(2 * (client.connect_timeout + client.read_timeout)) + 5
    if not cache.add(in_flight, meta.request_id or "1", timeout=seconds):
        metrics.action_counted(action, "refused")
        raise ActionRefused("The same action on this VM is already under way. Nothing was sent again.")
    try:
        intent = DeletionEvent.objects.create(
            kind=DeletionEvent.Kind.INTENT,
            action=action,
            details=details,
            created_at=timezone.now(),
            **audit_snapshot(api_key, vm, meta),
        )
        logger.info("vm %s requested: vm=%s key=%s by %s", action, vm.id, api_key.pk, meta.actor_username)
        status = None
        try:
            call()
        except FluenceError as error:
            status = error.status
            outcome, message = write_outcome_of(
                error,
                key_id=api_key.pk,
                unknown="Outcome unknown: Fluence did not confirm it{reason}; it may or may not have "
                "happened. Look at the VM before asking again.",
            )
        else:
            outcome = DeletionEvent.Outcome.SUCCEEDED
            message = done
            vm_cache.forget(api_key.pk)  # the next look at the list asks Fluence again, and shows the change
        audit_outcome_record(intent=intent, outcome=outcome, message=message, upstream_status=status)
    finally:
        cache.delete(in_flight)
    metrics.action_counted(action, outcome)
    logger.info("vm %s %s: vm=%s key=%s status=%s", action, outcome, vm.id, api_key.pk, status)
    return ActionResult(action=action, outcome=outcome, message=message, correlation_id=intent.correlation_id)


# --- settling unknown outcomes ---------------------------------------------------------------------------


SETTLED_ACTIONS = (
    DeletionEvent.Action.VM_RENAME,
    DeletionEvent.Action.VM_RESTART,
    DeletionEvent.Action.VM_SOFT_REBOOT,
    DeletionEvent.Action.VM_PORTS,
)
CANNOT_TELL = "cannot_tell"  # Fluence's answer says nothing either way: nothing is recorded


def listed_vms(api_key: ApiKey) -> dict[str, Vm]:
    """The VMs Fluence lists under this key now, by lowercase id. Raises FluenceError or
    SecretDecryptionError."""
    client = FluenceClient(
        base_url=api_key.base_url, api_key=api_key.secret.reveal(), generation=api_key.generation
    )
    return {vm.key: vm for vm in client.list_vms()}


def _ports_of(vm: Vm) -> list[tuple[int, str]]:
    return sorted((port.port, port.protocol) for port in vm.ports or ())


def _ports_in(details: dict, side: str) -> list[tuple[int, str]]:
    return sorted((port["port"], port["protocol"]) for port in details.get(side, {}).get("ports", []))


def _action_verdict(intent: DeletionEvent, vm: Vm | None) -> tuple[str, str]:
    """What Fluence's VM says of one rename, restart or ports attempt: succeeded, failed or CANNOT_TELL, and
    why. A rename and a port change take effect in the call itself; a restart leaves the VM restarting, then
    ready again since a time after the request."""
    if vm is None:
        return CANNOT_TELL, "Fluence no longer lists the VM"
    details = intent.details or {}
    action = intent.action
    if action == DeletionEvent.Action.VM_RENAME:
        before, after = details.get("before", {}).get("name"), details.get("after", {}).get("name")
        if vm.name == after:
            return DeletionEvent.Outcome.SUCCEEDED, f"Fluence lists the VM under its new name “{after}”"
        if vm.name == before:
            return DeletionEvent.Outcome.FAILED, f"Fluence still lists the VM under its old name “{before}”"
        return CANNOT_TELL, "Fluence lists the VM under another name since"
    if action == DeletionEvent.Action.VM_PORTS:
        if _ports_of(vm) == _ports_in(details, "after"):
            return DeletionEvent.Outcome.SUCCEEDED, "Fluence lists the VM with the new open ports"
        if _ports_of(vm) == _ports_in(details, "before"):
            return DeletionEvent.Outcome.FAILED, "Fluence still lists the VM with its old open ports"
        return CANNOT_TELL, "Fluence lists other open ports since"
    if vm.status.key in ("restarting", "softrebooting"):
        return DeletionEvent.Outcome.SUCCEEDED, f"Fluence shows the VM {vm.status.label.lower()}"
    ready_since = vm.ready_since
    if ready_since is not None and ready_since >= intent.created_at:
        return DeletionEvent.Outcome.SUCCEEDED, "Fluence shows the VM ready again since after the request"
    if ready_since is not None and vm.status.key == "launched":
        return DeletionEvent.Outcome.FAILED, "Fluence shows the VM running since before the request"
    return CANNOT_TELL, "Fluence's answer does not say whether the VM restarted"


def action_attempt_settle(
    *, intent: DeletionEvent, vms: dict[str, Vm], source: str, note: str = "", dry_run: bool = False
) -> Settlement:
    """Decide one rename, restart or ports attempt whose outcome is unknown from what Fluence lists now, and
    append its outcome row (unless `dry_run`), under the same one-answer-per-attempt lock as deletions.
    CANNOT_TELL records nothing."""
    outcome, message = _action_verdict(intent, vms.get(intent.vm_id.lower()))
    if outcome == CANNOT_TELL:
        return Settlement(CANNOT_TELL, f"{message}: nothing was recorded.")
    return attempt_settle_once(
        intent=intent, outcome=outcome, message=message, note=note, source=source, dry_run=dry_run
    )


# --- what a VM's page offers -----------------------------------------------------------------------------


def offers(lookup) -> dict:
    """The actions a VM's page offers this person (a selectors.VmLookup), for its template: `rename` (the
    API's name rule, or None), `restart_offer` ((kind, label) pairs Fluence allows now) and `ports_offer`
    (the open ports the form starts from, or None). Each needs the owner or operator role on the key (the
    account's, from vms.permissions) and an API that can; the services check both again."""
    adapter = ADAPTERS.get(lookup.result.account.generation)
    vm = lookup.vm
    if vm is None or adapter is None or not lookup.result.account.can_delete:
        return {"rename": None, "restart_offer": [], "ports_offer": None}
    rename = (
        {"rule": adapter.name_rule, "max_length": adapter.name_max_length, "api": adapter.label}
        if adapter.can_rename
        else None
    )
    allowed = vm.allowed_actions or ()
    restarts = [
        (kind, label)
        for kind, label in (("restart", "Restart"), ("softreboot", "Soft reboot"))
        if adapter.can_restart and RESTART_ACTIONS[kind == "softreboot"] in allowed
    ]
    # A list that replaces ports nobody could read is not offered.
    ports_unreadable = any(item.field.split(".")[0].split("[")[0] == "ports" for item in vm.unreadable)
    ports = ports_text(vm.ports) if adapter.can_set_ports and not ports_unreadable else None
    return {"rename": rename, "restart_offer": restarts, "ports_offer": ports}
