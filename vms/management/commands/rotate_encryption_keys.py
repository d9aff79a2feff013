"""Re-encrypt every stored API key under the newest key of FIELD_ENCRYPTION_KEYS, and recompute its secret
digest under the key derived from that newest key (vms.secret_digest)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from vms import crypto, secret_digest, services, table_version
from vms.fields import SealedSecret
from vms.models import ApiKey, DeletionEvent
from vms.request_meta import RequestMeta


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key under the first (newest) key of FIELD_ENCRYPTION_KEYS and recompute "
        "its secret digest (the duplicate check) under it. Afterwards the older keys can be removed."
    )

    def handle(self, *args, **options):
        failures = []
        rotated = 0
        with transaction.atomic():
            for api_key in ApiKey.objects.select_for_update().order_by("pk"):
                try:
                    token = crypto.rotate(api_key.secret.token)
                    secret = crypto.decrypt(token)
                except crypto.SecretDecryptionError:
                    failures.append(api_key.pk)
                    continue
                digest = secret_digest.secret_digest(secret=secret, base_url=api_key.base_url)
                ApiKey.objects.filter(pk=api_key.pk).update(secret=SealedSecret(token), secret_digest=digest)
                rotated += 1
            table_version.bump_epoch()  # update() sends no signal, and the keys' digests may have changed
            if failures:
                # Raised inside the transaction: nothing changed, and nothing is audited.
                raise CommandError(
                    f"{len(failures)} key(s) cannot be decrypted with FIELD_ENCRYPTION_KEYS "
                    f"(ids {', '.join(map(str, failures))}); nothing was changed."
                )
            services.audit_event_record(
                action=DeletionEvent.Action.KEYS_ROTATE,
                meta=RequestMeta(
                    actor_username="rotate_encryption_keys",
                    actor_id="",
                    client_ip=None,
                    user_agent="",
                    request_id="",
                ),
                details={"keys_reencrypted": rotated},
                message="Every stored API key re-encrypted under the newest encryption key.",
                source="command",
            )
        self.stdout.write(
            f"Re-encrypted {rotated} API key(s) under the newest encryption key, and recomputed their "
            "secret digests."
        )
