"""Refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL) on the deletion audit table, in the database itself."""

from django.db import migrations

from vms import audit_triggers


def install(apps, schema_editor):
    audit_triggers.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    audit_triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("vms", "0002_deletionevent")]

    operations = [migrations.RunPython(install, uninstall)]
