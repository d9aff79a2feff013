"""The deletion audit trail is append-only in the database, in the model and across user/key removal."""

import importlib
import uuid
from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from vms import audit_triggers
from vms.models import ApiKey, AppendOnlyError, DeletionEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_triggers_installed")]

VM_ID = "0x0000000000000000000000000000000000000001"


@pytest.fixture
def rows(user, alice_key):
    correlation_id = uuid.uuid4()
    common = {
        "correlation_id": correlation_id,
        "actor_username": user.get_username(),
        "actor_id": str(user.pk),
        "key_id": str(alice_key.pk),
        "key_label": alice_key.label,
        "key_last_four": alice_key.last_four,
        "key_owner_username": user.get_username(),
        "vm_id": VM_ID,
        "vm_name": "vm-name",
        "vm_snapshot": {"id": VM_ID, "status": "ACTIVE"},
    }
    intent = DeletionEvent.objects.create(kind="intent", created_at=timezone.now(), **common)
    outcome = DeletionEvent.objects.create(
        kind="outcome", outcome="succeeded", upstream_status=200, created_at=timezone.now(), **common
    )
    return [intent, outcome]


def _snapshot():
    return list(DeletionEvent.objects.order_by("pk").values())


def _deletion_rows():
    # The key fixture's "key added" event is a row of the trail too.
    return DeletionEvent.objects.filter(action=DeletionEvent.Action.VM_DELETE)


def _refused(sql: str, params: list | None = None) -> None:
    # Inside atomic(): the failed statement rolls back to a savepoint and the test's transaction survives.
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def test_database_refuses_update(rows):
    before = _snapshot()
    _refused("UPDATE vms_deletionevent SET message = 'x'")
    assert _snapshot() == before


def test_database_refuses_delete(rows):
    before = _snapshot()
    _refused("DELETE FROM vms_deletionevent")
    _refused("DELETE FROM vms_deletionevent WHERE id = %s", [rows[0].pk])
    assert _snapshot() == before


def test_database_refuses_truncate_on_postgresql(rows):
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only (SQLite has no such statement)")
    before = _snapshot()
    _refused("TRUNCATE vms_deletionevent")
    assert _snapshot() == before


def test_database_still_accepts_inserts(rows):
    assert _deletion_rows().count() == 2


def test_model_refuses_save_on_an_existing_row(rows):
    row = DeletionEvent.objects.get(pk=rows[0].pk)
    row.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.save(update_fields=["message"])
    assert DeletionEvent.objects.get(pk=rows[0].pk).message == ""


def test_model_refuses_delete(rows):
    with pytest.raises(AppendOnlyError):
        rows[0].delete()
    assert _deletion_rows().count() == 2


def test_queryset_refuses_update_and_delete(rows):
    with pytest.raises(AppendOnlyError):
        DeletionEvent.objects.update(message="x")
    with pytest.raises(AppendOnlyError):
        DeletionEvent.objects.filter(pk=rows[0].pk).update(message="x")
    with pytest.raises(AppendOnlyError):
        DeletionEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        DeletionEvent.objects.filter(pk=rows[0].pk).delete()
    assert _deletion_rows().order_by("pk").values()[0]["message"] == ""
    assert _deletion_rows().count() == 2


def test_removing_the_key_and_the_user_leaves_every_row_intact(rows, user, alice_key):
    before = _snapshot()
    alice_key.delete()
    assert not ApiKey.objects.exists()
    assert _snapshot() == before
    user.delete()
    assert _snapshot() == before
    assert {row["actor_username"] for row in before} == {"alice"}
    assert {row["key_label"] for row in before} == {"Production"}


# --- rewriting a row by inserting over it ------------------------------------------------------------


def _reinsert_with_forged_actor(row_id: int, *, verb: str = "INSERT", on_conflict: str = "") -> tuple:
    """The attack: insert a copy of an existing row, same id, with another actor (SQL and its parameters)."""
    columns = [field.column for field in DeletionEvent._meta.concrete_fields]
    values = ["'forged'" if column == "actor_username" else column for column in columns]
    sql = (
        f"{verb} INTO vms_deletionevent ({', '.join(columns)}) "  # noqa: S608 (column names of the model)
        f"SELECT {', '.join(values)} FROM vms_deletionevent WHERE id = %s {on_conflict}"
    )
    return sql, [row_id]


@pytest.mark.parametrize(
    ("verb", "on_conflict"),
    [
        ("INSERT OR REPLACE", ""),
        ("REPLACE", ""),
        ("INSERT", "ON CONFLICT(id) DO UPDATE SET actor_username = excluded.actor_username"),
    ],
)
def test_sqlite_refuses_rewriting_a_row_by_inserting_over_it(rows, verb, on_conflict):
    if connection.vendor != "sqlite":
        pytest.skip("REPLACE is SQLite's; PostgreSQL's upsert is tested below")
    before = _snapshot()
    _refused(*_reinsert_with_forged_actor(rows[0].pk, verb=verb, on_conflict=on_conflict))
    assert _snapshot() == before
    assert DeletionEvent.objects.get(pk=rows[0].pk).actor_username == "alice"


def test_postgresql_refuses_rewriting_a_row_by_an_upsert(rows):
    if connection.vendor != "postgresql":
        pytest.skip("ON CONFLICT (id) DO UPDATE on PostgreSQL; SQLite's forms are tested above")
    before = _snapshot()
    upsert = "ON CONFLICT (id) DO UPDATE SET actor_username = EXCLUDED.actor_username"
    _refused(*_reinsert_with_forged_actor(rows[0].pk, on_conflict=upsert))
    assert _snapshot() == before
    assert DeletionEvent.objects.get(pk=rows[0].pk).actor_username == "alice"


def test_the_migration_installs_the_insert_guard_on_an_existing_sqlite_database(rows):
    if connection.vendor != "sqlite":
        pytest.skip("the insert guard is SQLite's")
    migration = importlib.import_module("vms.migrations.0006_deletionevent_no_replace")
    audit_triggers.uninstall_no_replace(connection)  # a database migrated before the guard existed
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(*_reinsert_with_forged_actor(rows[0].pk, verb="INSERT OR REPLACE"))
        assert DeletionEvent.objects.get(pk=rows[0].pk).actor_username == "forged"  # the attack works
        transaction.set_rollback(True)

    migration.install(None, SimpleNamespace(connection=connection))

    before = _snapshot()
    _refused(*_reinsert_with_forged_actor(rows[0].pk, verb="INSERT OR REPLACE"))
    assert _snapshot() == before
    DeletionEvent.objects.create(**{**_copyable(rows[0]), "kind": "outcome"})  # new rows still go in
    assert _deletion_rows().count() == 3


def _copyable(row: DeletionEvent) -> dict:
    return {
        field.name: getattr(row, field.name)
        for field in DeletionEvent._meta.concrete_fields
        if field.name != "id"
    }
