"""The last four characters of a key are called what they are (`last_four`, `key_last_four`): a rename in
Python only, the columns keep their names (`fingerprint`, `key_fingerprint`). Nothing runs on the database,
so the audit table's triggers never see an ALTER."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("vms", "0006_deletionevent_no_replace")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField("apikey", "fingerprint", "last_four"),
                migrations.AlterField(
                    "apikey", "last_four", models.CharField(max_length=4, db_column="fingerprint")
                ),
                migrations.RenameField("deletionevent", "key_fingerprint", "key_last_four"),
                migrations.AlterField(
                    "deletionevent",
                    "key_last_four",
                    models.CharField(max_length=4, db_column="key_fingerprint"),
                ),
            ],
            database_operations=[],
        )
    ]
