"""API keys carry a keyed digest of their secret and base URL (vms.secret_digest), to recognise the same
Fluence account stored twice. 0009 fills it for the keys stored before."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("vms", "0007_last_four")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="secret_digest",
            field=models.CharField(blank=True, db_index=True, default="", editable=False, max_length=64),
        ),
    ]
