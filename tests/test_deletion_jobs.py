"""Bulk deletions as background jobs: their progress as the person who started them sees it, polled every
second until every VM has an outcome; nobody else's; a job whose process died; a real thread."""

import threading
import time

import pytest
from django.urls import reverse

from tests.factories import OPS_KEY, deletion_rows, meta_for
from vms import deletion_jobs, services

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


def _active_refs(api_key, sandbox, count=3) -> list[str]:
    vms = [vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE"][:count]
    assert len(vms) == count
    return [f"{api_key.pk}:{vm['id']}" for vm in vms]


@pytest.fixture
def held(monkeypatch):
    """Jobs are started but not run until the test says so: the list of their bodies."""
    bodies = []
    monkeypatch.setattr(deletion_jobs, "spawn", bodies.append)
    return bodies


def _start(user, api_key, sandbox, count=3):
    selection = services.vms_select_for_deletion(user=user, values=_active_refs(api_key, sandbox, count))
    return deletion_jobs.deletion_job_start(user=user, selection=selection, meta=meta_for(user))


# --- the service -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_job_goes_from_waiting_to_each_outcome_as_it_is_heard(user, api_key, sandbox, held, monkeypatch):
    job_id = _start(user, api_key, sandbox)
    before = deletion_jobs.deletion_job_for(user=user, job_id=job_id)
    assert (before.total, before.finished_count, before.over) == (3, 0, False)
    assert {item.outcome for item in before.items} == {"waiting"}
    assert sandbox.state.request_count(method="DELETE") == 0 and deletion_rows().count() == 0

    seen = []
    save = deletion_jobs._save
    monkeypatch.setattr(
        deletion_jobs,
        "_save",
        lambda job, state: (
            save(job, state),
            seen.append(deletion_jobs.deletion_job_for(user=user, job_id=job)),
        ),
    )
    [body] = held
    body()
    assert [progress.finished_count for progress in seen] == [1, 2, 3, 3]  # one VM at a time, then done
    assert [progress.over for progress in seen] == [False, False, False, True]
    after = deletion_jobs.deletion_job_for(user=user, job_id=job_id)
    assert [item.outcome for item in after.items] == ["succeeded"] * 3
    assert all("Fluence accepted the deletion" in item.message for item in after.items)
    # The services wrote the audit as for any deletion: an intent and an outcome row per VM.
    assert deletion_rows().filter(kind="intent").count() == 3
    assert deletion_rows().filter(kind="outcome", outcome="succeeded").count() == 3


@pytest.mark.django_db
def test_a_job_is_only_its_starters(user, other_user, api_key, sandbox, held):
    job_id = _start(user, api_key, sandbox)
    assert len(job_id) >= 32  # unguessable
    assert deletion_jobs.deletion_job_for(user=other_user, job_id=job_id) is None
    # One character off (a different one: 1 id in 64 ends with "x", and "x" then changed nothing — a flake).
    forged = job_id[:-1] + ("y" if job_id.endswith("x") else "x")
    assert deletion_jobs.deletion_job_for(user=user, job_id=forged) is None
    assert deletion_jobs.deletion_job_for(user=user, job_id=job_id) is not None


@pytest.mark.django_db
def test_a_job_not_heard_of_for_too_long_says_outcome_unknown(user, api_key, sandbox, held, settings):
    job_id = _start(user, api_key, sandbox)
    settings.DELETION_JOB_STALL_SECONDS = 0
    time.sleep(0.01)
    progress = deletion_jobs.deletion_job_for(user=user, job_id=job_id)
    assert progress.stalled and progress.over
    assert {item.outcome for item in progress.items} == {"stalled"}


@pytest.mark.django_db
def test_a_job_whose_code_fails_ends_with_outcome_unknown(user, api_key, sandbox, held, monkeypatch):
    job_id = _start(user, api_key, sandbox)

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "vms_delete_selected", broken)
    held[0]()
    progress = deletion_jobs.deletion_job_for(user=user, job_id=job_id)
    assert progress.done and {item.outcome for item in progress.items} == {"stalled"}


# --- the views ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_post_answers_at_once_with_progress_that_polls_every_second(alice_client, api_key, sandbox, held):
    refs = _active_refs(api_key, sandbox)
    response = alice_client.post(reverse("vms:bulk_delete"), {"vm": refs, "confirm": "3"}, **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in body and "Deleting 3 VMs…" in body and "0 of 3" in body
    assert sandbox.state.request_count(method="DELETE") == 0  # nothing sent in the request itself
    job_url = reverse("vms:bulk_delete_job", args=[body.split("/vms/delete/jobs/")[1].split("/")[0]])

    polled = alice_client.get(job_url, **HX)
    assert polled.status_code == 200 and "every 1s" in polled.content.decode()

    held[0]()
    final = alice_client.get(job_url, **HX)
    text = final.content.decode()
    assert final.status_code == 286  # htmx stops polling
    assert "vms-changed" in final["HX-Trigger"]
    assert "every 1s" not in text and "Deletion results" in text
    assert text.count('class="outcome-succeeded"') == 3


@pytest.mark.django_db
def test_someone_else_polling_a_job_learns_nothing(client, other_user, alice_client, api_key, sandbox, held):
    refs = _active_refs(api_key, sandbox)
    body = alice_client.post(reverse("vms:bulk_delete"), {"vm": refs, "confirm": "3"}, **HX).content.decode()
    job_url = "/vms/delete/jobs/" + body.split("/vms/delete/jobs/")[1].split("/")[0] + "/"
    client.force_login(other_user)
    stranger = client.get(job_url, **HX)
    assert stranger.status_code == 286 and "Deletion not found" in stranger.content.decode()
    assert client.get(job_url).status_code == 404
    assert all(ref.split(":")[1] not in stranger.content.decode() for ref in refs)


@pytest.mark.django_db
def test_without_javascript_the_post_leads_to_the_job_page(alice_client, api_key, sandbox):
    refs = _active_refs(api_key, sandbox, count=2)
    response = alice_client.post(reverse("vms:bulk_delete"), {"vm": refs, "confirm": "2"})
    assert response.status_code == 302 and "/vms/delete/jobs/" in response["Location"]
    page = alice_client.get(response["Location"])
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert page.content.decode().count('class="outcome-succeeded"') == 2


@pytest.mark.django_db
def test_a_stalled_job_tells_to_check_the_audit_page(alice_client, api_key, sandbox, held, settings):
    refs = _active_refs(api_key, sandbox, count=2)
    body = alice_client.post(reverse("vms:bulk_delete"), {"vm": refs, "confirm": "2"}, **HX).content.decode()
    job_url = "/vms/delete/jobs/" + body.split("/vms/delete/jobs/")[1].split("/")[0] + "/"
    settings.DELETION_JOB_STALL_SECONDS = 0
    time.sleep(0.01)
    stalled = alice_client.get(job_url, **HX)
    assert stalled.status_code == 286
    assert stalled.content.decode().count("outcome unknown: check the audit page") == 2


# --- a real thread -----------------------------------------------------------------------------------------


class TestInARealThread:
    @pytest.fixture
    def _deletion_jobs_inline(self):
        """Overrides tests/conftest.py's for this class: a real thread (the test commits, so it sees it)."""

    @pytest.mark.django_db(transaction=True)
    def test_the_thread_finishes_the_job_after_the_request_has_answered(
        self, _deletion_jobs_inline, user, api_key, sandbox, audit_triggers_lifted_for_flush, monkeypatch
    ):
        selection = services.vms_select_for_deletion(user=user, values=_active_refs(api_key, sandbox))
        release = threading.Event()
        real_record = sandbox.state.record_request

        def held(method, path, key):  # Fluence answers no DELETE until the test lets it
            if method == "DELETE":
                release.wait(30)
            return real_record(method, path, key)

        monkeypatch.setattr(sandbox.state, "record_request", held)
        job_id = deletion_jobs.deletion_job_start(user=user, selection=selection, meta=meta_for(user))
        # The request has its answer while Fluence has answered nothing: it did not wait for Fluence.
        progress = deletion_jobs.deletion_job_for(user=user, job_id=job_id)
        assert not progress.over and progress.finished_count == 0
        release.set()
        while not progress.over:  # pytest-timeout ends a job that never finishes
            time.sleep(0.1)
            progress = deletion_jobs.deletion_job_for(user=user, job_id=job_id)
        assert progress.done and [item.outcome for item in progress.items] == ["succeeded"] * 3
        assert deletion_rows().filter(kind="outcome", outcome="succeeded").count() == 3
