"""Refuse SQLite's INSERT OR REPLACE on the deletion audit table: it removes a row without a DELETE trigger."""

from django.db import migrations

from vms import audit_triggers


def install(apps, schema_editor):
    audit_triggers.install_no_replace(schema_editor.connection)


def uninstall(apps, schema_editor):
    audit_triggers.uninstall_no_replace(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("vms", "0005_apikey_generation")]

    operations = [migrations.RunPython(install, uninstall)]
