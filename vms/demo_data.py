"""The demo data of `make run`: users with passwords and API keys pointing at the local sandbox, a group
they share, and one key already shared with it, so that every feature can be tried at once."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from vms import secret_digest, services
from vms.models import ApiKey, KeyShare
from vms.sandbox import DEMO_ACCOUNTS, DEMO_LABELS, DEMO_USERS

# Bob also holds a key Fluence has revoked, so the demo shows how one failing account looks.
EXTRA_DEMO_KEYS = {"bob": [("sbx_demo_revoked_0001", "Old account")]}
# Both demo users are in one team; alice is its ops person (she may share keys) and already shares one.
DEMO_GROUP = "Ops"
DEMO_SHARER = "alice"
DEMO_SHARED_KEY_LABEL = "Production"


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
            # The same account under a label renamed since: replaced too (a person holds an account once).
            same_account = secret_digest.secret_digests(secret=secret, base_url=sandbox_url)
            ApiKey.objects.filter(owner=user, secret_digest__in=same_account).delete()
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
    _demo_team_create(usernames=list(DEMO_USERS))
    return created


def _demo_team_create(*, usernames: list[str]) -> None:
    """The group of both demo users, the sharing permission for alice, and her Production key shared with
    the group as viewer (bob sees its VMs). Safe to run again: nothing is added twice."""
    User = get_user_model()
    group, _ = Group.objects.get_or_create(name=DEMO_GROUP)
    group.user_set.add(*User.objects.filter(username__in=usernames))
    sharer = User.objects.get(username=DEMO_SHARER)
    sharer.user_permissions.add(
        Permission.objects.get(content_type__app_label="vms", codename="share_apikey")
    )
    sharer = User.objects.get(pk=sharer.pk)  # a fresh copy: has_perm caches the permissions it read
    services.keyshare_set(
        api_key=ApiKey.objects.get(owner=sharer, label=DEMO_SHARED_KEY_LABEL),
        group=group,
        role=KeyShare.Role.VIEWER,
        shared_by=sharer,
    )
