"""Key sharing: a key shared with a Django group, with a viewer or operator role."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("vms", "0003_deletionevent_append_only"),
    ]

    operations = [
        migrations.CreateModel(
            name="KeyShare",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("viewer", "Viewer (sees the VMs)"),
                            ("operator", "Operator (may also delete VMs)"),
                        ],
                        default="viewer",
                        max_length=10,
                    ),
                ),
                ("created_by_username", models.CharField(blank=True, max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "api_key",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="shares", to="vms.apikey"
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="key_shares",
                        to="auth.group",
                    ),
                ),
            ],
            options={
                "verbose_name": "key share",
                "ordering": ["group__name", "pk"],
                "permissions": [("share_apikey", "Can share API keys with groups")],
                "constraints": [
                    models.UniqueConstraint(fields=("api_key", "group"), name="keyshare_unique_group_per_key")
                ],
            },
        ),
    ]
