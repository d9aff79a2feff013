"""Writes: adding, renaming and removing API keys (deletion of VMs joins here later). Each is logged."""

import logging
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from vms.fluence.client import FluenceClient
from vms.fluence.errors import AuthError, FluenceError
from vms.models import ApiKey

logger = logging.getLogger("vms.services")

# Printable ASCII without spaces: anything else cannot travel in an HTTP header.
_SECRET_RE = re.compile(r"^[\x21-\x7e]{8,512}$")
LABEL_MAX_LENGTH = 80


def clean_label(label: str) -> str:
    label = " ".join((label or "").split())
    if not label:
        raise ValidationError({"label": "Give the key a label, e.g. “Production”."})
    if len(label) > LABEL_MAX_LENGTH:
        raise ValidationError({"label": f"A label has at most {LABEL_MAX_LENGTH} characters."})
    return label


def clean_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if not _SECRET_RE.match(secret):
        raise ValidationError(
            {"secret": "An API key is 8 to 512 printable characters without spaces. Paste it again."}
        )
    return secret


def clean_base_url(base_url: str) -> str:
    base_url = (base_url or "").strip().rstrip("/")
    if base_url not in settings.FLUENCE_API_URLS:
        raise ValidationError(
            {"base_url": "This API address is not on the administrator's list of allowed Fluence API URLs."}
        )
    return base_url


def apikey_verify(*, secret: str, base_url: str, generation: str = "baseline") -> int:
    """Try a key with one list call; return how many VMs it sees, or raise ValidationError."""
    client = FluenceClient(base_url=base_url, api_key=secret, generation=generation)
    try:
        vms = client.list_vms()
    except AuthError as exc:
        detail = f": {exc.upstream_message}" if exc.upstream_message else ""
        raise ValidationError(
            {"secret": f"Fluence refused this key{detail}. Check it and paste it again."}
        ) from None
    except FluenceError as exc:
        raise ValidationError(f"{exc.user_message} The key was not saved; try again later.") from None
    return len(vms)


def apikey_create(*, owner, label: str, secret: str, base_url: str, verify: bool = True) -> ApiKey:
    label = clean_label(label)
    secret = clean_secret(secret)
    base_url = clean_base_url(base_url)
    if ApiKey.objects.filter(owner=owner, label=label).exists():
        raise ValidationError({"label": "You already have a key with this label."})
    if verify:
        apikey_verify(secret=secret, base_url=base_url)
    api_key = ApiKey.objects.create(
        owner=owner,
        label=label,
        secret=secret,
        fingerprint=secret[-4:],
        base_url=base_url,
        last_used_at=timezone.now() if verify else None,
    )
    logger.info(
        "api key added: id=%s owner=%s label=%r fingerprint=…%s", api_key.pk, owner, label, secret[-4:]
    )
    return api_key


@transaction.atomic
def apikey_rename(*, api_key: ApiKey, label: str) -> ApiKey:
    label = clean_label(label)
    if ApiKey.objects.filter(owner=api_key.owner, label=label).exclude(pk=api_key.pk).exists():
        raise ValidationError({"label": "You already have a key with this label."})
    api_key.label = label
    api_key.save(update_fields=["label", "updated_at"])
    logger.info("api key renamed: id=%s label=%r", api_key.pk, label)
    return api_key


def apikey_delete(*, api_key: ApiKey) -> None:
    logger.info(
        "api key removed: id=%s label=%r fingerprint=…%s", api_key.pk, api_key.label, api_key.fingerprint
    )
    api_key.delete()


def apikey_touch(*, api_key: ApiKey) -> None:
    """Record that the key was used, at most once every five minutes (it costs a write)."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 300:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
