"""The audit trail of every write: an action per row (every row written before reads `vm_delete`), what it
changed (`details`), an `event` kind for changes made in the portal's own database, and a permission named
for the whole trail (the old one still grants it).

Both columns are added in place (ALTER TABLE ADD COLUMN, on SQLite too: nullable, a constant database
default) so that no row is rewritten and the append-only triggers stay; tests/test_audit_migration.py
checks both on SQLite and PostgreSQL."""

from django.db import migrations, models

from vms import audit_triggers


def reinstall_triggers(apps, schema_editor):
    # Backwards, SQLite drops the indexed column by rebuilding the table, which drops its triggers too.
    audit_triggers.ensure_installed(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("vms", "0010_userpreferences"),
    ]

    operations = [
        # First, so that it runs last when the migration is reversed.
        migrations.RunPython(migrations.RunPython.noop, reinstall_triggers),
        migrations.AlterModelOptions(
            name="deletionevent",
            options={
                "ordering": ["-created_at", "-pk"],
                "permissions": [
                    ("view_all_audit", "Can see every event in the audit trail"),
                    ("view_all_deletions", "Can see every deletion in the audit trail"),
                ],
            },
        ),
        migrations.AddField(
            model_name="deletionevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("vm_delete", "VM deleted"),
                    ("vm_rename", "VM renamed"),
                    ("vm_restart", "VM restarted"),
                    ("vm_soft_reboot", "VM soft-rebooted"),
                    ("vm_ports", "Ports changed"),
                    ("key_add", "Key added"),
                    ("key_rename", "Key renamed"),
                    ("key_remove", "Key removed"),
                    ("key_share", "Key shared"),
                    ("key_unshare", "Key unshared"),
                    ("key_role", "Share role changed"),
                    ("key_generation", "Key's API generation switched"),
                    ("keys_rotate", "Encryption keys rotated"),
                ],
                db_default=models.Value("vm_delete"),
                db_index=True,
                max_length=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="deletionevent",
            name="details",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="deletionevent",
            name="kind",
            field=models.CharField(
                choices=[("intent", "Intent"), ("outcome", "Outcome"), ("event", "Event")], max_length=10
            ),
        ),
    ]
