"""Bulk deletions as jobs: started by one request, run in a thread of that process, their progress kept in
the shared cache so that any process answers the polls of the person who started them.

The deleting itself is services.vms_delete_selected (intent and outcome rows as for one VM); a job only
reports it as it goes. A job whose process died stops moving: after DELETION_JOB_STALL_SECONDS without
news its unfinished VMs read "outcome unknown: check the audit page"."""

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from vms import services
from vms.accounts import VmRow

logger = logging.getLogger("vms.deletion_jobs")

JOB_SECONDS = 60 * 60  # how long a job's progress stays readable
WAITING = "waiting"
STALLED = "stalled"  # never heard of again: the process running it died or was stopped


def _cache_key(job_id: str) -> str:
    return f"vms:deletion-job:{job_id}"


def spawn(target: Callable[[], None]) -> None:
    """Run `target` in a thread of its own. Not a daemon: a process stopped gracefully (a deploy, gunicorn's
    max_requests) finishes the deletions it started, so that no intent row waits for its outcome."""

    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()  # this thread's own database connections

    threading.Thread(target=run, name="deletion-job", daemon=False).start()


@dataclass(frozen=True)
class JobItem:
    ref: str  # "key_id:vm_id"
    vm_id: str
    name: str
    account_label: str
    outcome: str  # WAITING, STALLED, or a DeletionResult outcome
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.outcome not in (WAITING, STALLED)


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    items: tuple[JobItem, ...]
    done: bool
    stalled: bool

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def finished_count(self) -> int:
        return sum(item.finished for item in self.items)

    @property
    def over(self) -> bool:
        """Nothing more will change: stop polling."""
        return self.done or self.stalled

    def count(self, outcome: str) -> int:
        return sum(item.outcome == outcome for item in self.items)


def deletion_job_start(*, user, selection: services.BulkSelection, meta: services.RequestMeta) -> str:
    """Start deleting a bulk selection in the background; the job's id (unguessable) to poll it with."""
    job_id = secrets.token_urlsafe(24)
    state = {
        "owner_id": user.pk,
        "updated_at": timezone.now().timestamp(),
        "done": False,
        "items": [
            {
                "ref": f"{row.account.key_id}:{row.vm.id}",
                "vm_id": row.vm.id,
                "name": row.vm.display_name,
                "account_label": row.account.label,
                "outcome": WAITING,
                "message": "",
            }
            for row, _ in selection.selected
        ],
    }
    cache.set(_cache_key(job_id), state, JOB_SECONDS)
    logger.info("deletion job %s started by %s: %d VMs", job_id[:8], meta.actor_username, len(state["items"]))
    spawn(lambda: _run(job_id, state, user=user, selection=selection, meta=meta))
    return job_id


def _run(job_id: str, state: dict, *, user, selection, meta) -> None:
    # Only this thread writes the job's entry: each news is the whole state again, with a fresh time.
    positions = {
        f"{row.account.key_id}:{row.vm.id}": index for index, (row, _) in enumerate(selection.selected)
    }

    def heard(row: VmRow, result: services.DeletionResult) -> None:
        item = state["items"][positions[f"{row.account.key_id}:{row.vm.id}"]]
        item["outcome"], item["message"] = result.outcome, result.message
        _save(job_id, state)

    try:
        services.vms_delete_selected(user=user, selection=selection, meta=meta, on_result=heard)
    except Exception:
        logger.exception("deletion job %s failed", job_id[:8])
        for item in state["items"]:
            if item["outcome"] == WAITING:
                item["outcome"] = STALLED
    finally:
        state["done"] = True
        _save(job_id, state)


def _save(job_id: str, state: dict) -> None:
    state["updated_at"] = timezone.now().timestamp()
    cache.set(_cache_key(job_id), state, JOB_SECONDS)


def deletion_job_for(*, user, job_id: str) -> JobProgress | None:
    """The progress of a job this person started; None for any other (unknown, expired or someone else's:
    the same answer)."""
    if not user.is_authenticated or len(job_id) > 64:
        return None
    state = cache.get(_cache_key(job_id))
    if not state or state.get("owner_id") != user.pk:
        return None
    quiet_for = timezone.now().timestamp() - state["updated_at"]
    stalled = not state["done"] and quiet_for > settings.DELETION_JOB_STALL_SECONDS
    items = tuple(
        JobItem(**{**item, "outcome": STALLED if stalled and item["outcome"] == WAITING else item["outcome"]})
        for item in state["items"]
    )
    return JobProgress(job_id=job_id, items=items, done=state["done"], stalled=stalled)
