"""Fill the secret digest of the API keys stored before it existed: each secret is decrypted in memory
(vms.crypto, as the field does) and digested with its base URL (vms.secret_digest).

A key that cannot be decrypted with FIELD_ENCRYPTION_KEYS (or every key, when the list is not set) keeps an
empty digest and is reported, not fatal: it is never taken for a duplicate, and `manage.py
rotate_encryption_keys`, run once every key can be opened, fills it. Keys one person holds twice are
reported too; the VM list shows such an account once, and the person may remove the extra key."""

import sys
from collections import defaultdict

from django.core.exceptions import ImproperlyConfigured
from django.db import migrations

from vms import crypto
from vms.secret_digest import secret_digest


def _token(stored) -> str:
    # The historical field loads a SealedSecret; a plain column value would be the token itself.
    return getattr(stored, "token", stored)


def _under_the_migration_line(text: str) -> None:
    # `migrate` has written "Applying …" without a line end; its " OK" follows on a line of its own.
    sys.stdout.write(f"\n{text}\n")


def fill_secret_digests(apps, schema_editor, report=_under_the_migration_line):
    """Fills the empty digests; `report` gets one text saying what could not be done, if anything."""
    ApiKey = apps.get_model("vms", "ApiKey")
    rows = list(
        ApiKey.objects.filter(secret_digest="")
        .order_by("pk")
        .values_list("pk", "owner_id", "secret", "base_url")
    )
    if not rows:
        return
    try:
        crypto.current_fernet()
    except ImproperlyConfigured:
        report(
            f"  vms: FIELD_ENCRYPTION_KEYS is not usable here; {len(rows)} stored API key(s) keep an empty "
            "secret digest (no duplicate check) until `manage.py rotate_encryption_keys` runs with it set."
        )
        return
    unreadable, lines = [], []
    held_by = defaultdict(list)  # (owner id, digest) -> key ids
    for pk, owner_id, stored, base_url in rows:
        try:
            secret = crypto.decrypt(_token(stored))
        except crypto.SecretDecryptionError:
            unreadable.append(pk)
            continue
        digest = secret_digest(secret=secret, base_url=base_url)
        ApiKey.objects.filter(pk=pk).update(secret_digest=digest)
        held_by[owner_id, digest].append(pk)
    if unreadable:
        lines.append(
            f"  vms: {len(unreadable)} stored API key(s) cannot be decrypted with FIELD_ENCRYPTION_KEYS "
            f"(ids {', '.join(map(str, unreadable))}); they keep an empty secret digest (no duplicate check) "
            "until `manage.py rotate_encryption_keys` runs with their encryption key back in the list."
        )
    twice = [ids for ids in held_by.values() if len(ids) > 1]
    if twice:
        groups = "; ".join(", ".join(map(str, ids)) for ids in twice)
        lines.append(
            f"  vms: {len(twice)} Fluence account(s) are stored more than once by the same person (key ids "
            f"{groups}); the VM list shows each once. The owners may remove the extra keys."
        )
    if lines:
        report("\n".join(lines))


class Migration(migrations.Migration):
    dependencies = [("vms", "0008_apikey_secret_digest")]

    operations = [migrations.RunPython(fill_secret_digests, migrations.RunPython.noop)]
