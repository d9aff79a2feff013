"""The demo data of `make run`: users with passwords and API keys pointing at the local sandbox."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from vms import services
from vms.models import ApiKey
from vms.sandbox import DEMO_ACCOUNTS, DEMO_LABELS, DEMO_USERS

# Bob also holds a key Fluence has revoked, so the demo shows how one failing account looks.
EXTRA_DEMO_KEYS = {"bob": [("sbx_demo_revoked_0001", "Old account")]}


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    key_labels: tuple[str, ...]


@transaction.atomic
def demo_data_create(*, sandbox_url: str, password: str | None = None) -> list[DemoUser]:
    """Create (or reset) the demo users and their sandbox keys; returns who can sign in with what.

    Each run sets fresh random passwords unless one is given (the browser tests give one).
    """
    created = []
    User = get_user_model()
    for username, keys in DEMO_USERS.items():
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
        user_password = password or secrets.token_urlsafe(9)
        user.set_password(user_password)
        user.save()
        labels = []
        pairs = [(secret, DEMO_LABELS[secret]) for secret in keys] + EXTRA_DEMO_KEYS.get(username, [])
        for secret, label in pairs:
            ApiKey.objects.filter(owner=user, label=label).delete()
            # Stored as the sandbox serves each account: no probe, so that starting the demo asks nothing.
            generation = DEMO_ACCOUNTS[secret].get("generation", "baseline")
            services.apikey_create(
                owner=user,
                label=label,
                secret=secret,
                base_url=sandbox_url,
                generation=generation,
                verify=False,
            )
            labels.append(label)
        created.append(DemoUser(username=username, password=user_password, key_labels=tuple(labels)))
    return created
