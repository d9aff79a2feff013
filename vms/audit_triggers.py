"""Database triggers that make the deletion audit table append-only (PostgreSQL and SQLite)."""

TABLE = "vms_deletionevent"
MESSAGE = "vms_deletionevent is append-only: audit rows cannot be changed or removed"

_POSTGRES_INSTALL = [
    f"""CREATE OR REPLACE FUNCTION {TABLE}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END; $$""",
    f"""CREATE TRIGGER {TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION {TABLE}_refuse()""",
    f"""CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_refuse()""",
]
_POSTGRES_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update_delete ON {TABLE}",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
    f"DROP FUNCTION IF EXISTS {TABLE}_refuse()",
]
# SQLite's INSERT OR REPLACE (and REPLACE INTO) deletes the row it collides with without firing DELETE
# triggers: refuse any insert whose id is already taken, before the conflict is resolved. An upsert
# (INSERT … ON CONFLICT DO UPDATE) is refused here too, and by the UPDATE trigger behind it.
# PostgreSQL has no REPLACE; its ON CONFLICT DO UPDATE fires the BEFORE UPDATE trigger above.
# (An insert that leaves the id to SQLite sees NEW.id = -1 here, which no row has.)
_SQLITE_NO_REPLACE_INSTALL = [
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_replace BEFORE INSERT ON {TABLE}
        WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",  # noqa: S608 (module constants only)
]
_SQLITE_NO_REPLACE_UNINSTALL = [f"DROP TRIGGER IF EXISTS {TABLE}_no_replace"]
_SQLITE_INSTALL = [
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    *_SQLITE_NO_REPLACE_INSTALL,
]
_SQLITE_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_delete",
    *_SQLITE_NO_REPLACE_UNINSTALL,
]


def _statements(vendor: str, install: bool) -> list[str]:
    if vendor == "postgresql":
        return _POSTGRES_INSTALL if install else _POSTGRES_UNINSTALL
    if vendor == "sqlite":
        return _SQLITE_INSTALL if install else _SQLITE_UNINSTALL
    raise NotImplementedError(f"No append-only triggers for the {vendor} database.")


def _execute(connection, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def install(connection) -> None:
    _execute(connection, _statements(connection.vendor, install=True))


def uninstall(connection) -> None:
    """Only for migrations backwards and for the test suite's own clean-up between browser tests."""
    _execute(connection, _statements(connection.vendor, install=False))


def install_no_replace(connection) -> None:
    """The insert guard alone (migration 0006, for databases whose triggers predate it)."""
    _execute(connection, _SQLITE_NO_REPLACE_INSTALL if connection.vendor == "sqlite" else [])


def uninstall_no_replace(connection) -> None:
    _execute(connection, _SQLITE_NO_REPLACE_UNINSTALL if connection.vendor == "sqlite" else [])


def ensure_installed(connection) -> None:
    """Install the triggers whether or not they are there (the test suite lifts them around clean-ups)."""
    uninstall(connection)
    install(connection)
