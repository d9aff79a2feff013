"""Re-encrypt every stored API key under the newest key of FIELD_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from vms import crypto
from vms.fields import SealedSecret
from vms.models import ApiKey


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key under the first (newest) key of FIELD_ENCRYPTION_KEYS. "
        "Afterwards the older keys can be removed from the list."
    )

    def handle(self, *args, **options):
        failures = []
        rotated = 0
        with transaction.atomic():
            for api_key in ApiKey.objects.select_for_update().order_by("pk"):
                try:
                    token = crypto.rotate(api_key.secret.token)
                except crypto.SecretDecryptionError:
                    failures.append(api_key.pk)
                    continue
                ApiKey.objects.filter(pk=api_key.pk).update(secret=SealedSecret(token))
                rotated += 1
            if failures:
                raise CommandError(
                    f"{len(failures)} key(s) cannot be decrypted with FIELD_ENCRYPTION_KEYS "
                    f"(ids {', '.join(map(str, failures))}); nothing was changed."
                )
        self.stdout.write(f"Re-encrypted {rotated} API key(s) under the newest encryption key.")
