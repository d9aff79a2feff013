"""Migration 0011 (an action per audit row) keeps every deletion row as it was, reads it as a deletion,
and leaves the append-only triggers in place, on SQLite and on PostgreSQL."""

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("vms", "0010_userpreferences")
AFTER = ("vms", "0011_audit_actions")
OLD_COLUMNS = (
    "id, correlation_id, kind, outcome, created_at, source, actor_username, actor_id, client_ip, user_agent, "
    "request_id, key_id, key_label, key_fingerprint, key_owner_username, base_url, vm_id, vm_name, "
    "vm_snapshot, upstream_status, message"
)

FORGED_COLUMNS = OLD_COLUMNS.replace("actor_username", "'forged'")

pytestmark = pytest.mark.usefixtures("audit_triggers_lifted_for_flush")


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def _rows(columns=OLD_COLUMNS):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM vms_deletionevent ORDER BY id")  # noqa: S608 (constants)
        return cursor.fetchall()


def _refused(sql: str, params=None) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def _insert_old_deletion(kind: str, outcome: str, correlation_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO vms_deletionevent ({OLD_COLUMNS.removeprefix('id, ')}) "  # noqa: S608 (constants)
            "VALUES (%s, %s, %s, %s, 'portal', 'alice', '1', '10.0.0.1', 'ua', 'req-1', '7', 'Production', "
            "'abcd', 'alice', 'https://api.fluence.dev', '0x0000000000000000000000000000000000000001', "
            "'web-1', '{\"id\": \"0x1\"}', %s, 'Fluence accepted the deletion')",
            [
                correlation_id,
                kind,
                outcome,
                "2025-04-16 12:00:00+00:00",
                200 if outcome else None,
            ],
        )


def test_existing_deletion_rows_survive_unchanged_read_as_deletions_and_stay_append_only():
    _migrate(BEFORE)
    correlation_id = uuid.uuid4().hex
    _insert_old_deletion("intent", "", correlation_id)
    _insert_old_deletion("outcome", "succeeded", correlation_id)
    before = _rows()
    # The reverse migration kept the triggers (SQLite rebuilt the table to drop the column).
    _refused("DELETE FROM vms_deletionevent")

    _migrate(AFTER)

    assert _rows() == before
    assert _rows("action, details") == [("vm_delete", None), ("vm_delete", None)]
    from vms.models import DeletionEvent  # read through the model as the pages do

    events = list(DeletionEvent.objects.order_by("pk"))
    assert [event.get_action_display() for event in events] == ["VM deleted", "VM deleted"]
    _refused("UPDATE vms_deletionevent SET action = 'vm_rename'")
    _refused("UPDATE vms_deletionevent SET message = 'x'")
    _refused("DELETE FROM vms_deletionevent")
    first_id = before[0][0]
    if connection.vendor == "sqlite":
        _refused(
            f"INSERT OR REPLACE INTO vms_deletionevent ({OLD_COLUMNS}) "  # noqa: S608 (constants)
            f"SELECT {FORGED_COLUMNS} FROM vms_deletionevent WHERE id = %s",
            [first_id],
        )
    else:
        _refused("TRUNCATE vms_deletionevent")
        _refused(
            f"INSERT INTO vms_deletionevent ({OLD_COLUMNS}) "  # noqa: S608 (constants)
            f"SELECT {FORGED_COLUMNS} FROM vms_deletionevent WHERE id = %s "
            "ON CONFLICT (id) DO UPDATE SET actor_username = EXCLUDED.actor_username",
            [first_id],
        )
    assert _rows() == before
    # New rows still go in, and a row that names no action is a deletion.
    _insert_old_deletion("intent", "", uuid.uuid4().hex)
    assert _rows("action")[-1] == ("vm_delete",)
