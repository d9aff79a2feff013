"""The writes of single sign-on: find or create the user of an identity, and sync their mapped groups."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from fluence_portal.sso.models import SsoIdentity

logger = logging.getLogger("fluence_portal.sso")
security_log = logging.getLogger("fluence_portal.security")

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def sso_group_map() -> dict[str, str]:
    """IdP group name -> Django group name, from `SSO_GROUP_MAP`: the only groups SSO ever touches."""
    return dict(settings.SSO_GROUP_MAP)


@transaction.atomic
def sso_groups_sync(*, user: AbstractBaseUser, idp_groups: Iterable[str]) -> None:
    """Give the user exactly the mapped Django groups their IdP groups call for.

    Groups outside the map are never added or removed: those are managed by hand in the portal.
    """
    group_map = sso_group_map()
    if not group_map:
        return
    wanted = {group_map[name] for name in idp_groups if name in group_map}
    managed = set(group_map.values())
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    to_add = wanted - current
    to_remove = (managed - wanted) & current
    if to_add:
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in sorted(to_add)))
    if to_remove:
        user.groups.remove(*Group.objects.filter(name__in=to_remove))
    if to_add or to_remove:
        logger.info(
            "groups of %s synced from SSO: added %s, removed %s",
            user.get_username(),
            sorted(to_add),
            sorted(to_remove),
        )


def sso_user_for_identity(*, issuer: str, subject: str):
    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    return identity.user if identity else None


@transaction.atomic
def sso_user_create(*, issuer: str, subject: str, username: str, email: str, idp_groups: Iterable[str]):
    """A new user for a first SSO sign-in: no usable password, never staff or superuser."""
    user_model = get_user_model()
    user = user_model.objects.create_user(username=_free_username(username, subject), email=email or "")
    SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    sso_groups_sync(user=user, idp_groups=idp_groups)
    logger.info("user %s created at first sign-in through %s", user.get_username(), issuer)
    return user


@transaction.atomic
def sso_identity_link(*, user: AbstractBaseUser, issuer: str, subject: str) -> bool:
    """Link an existing local user to an identity; refused for staff, superusers and users linked elsewhere.

    Otherwise anyone the IdP names `admin` would become the portal's break-glass administrator.
    """
    if user.is_superuser or user.is_staff or user.sso_identities.exists():
        security_log.warning(
            "SSO sign-in refused: %s at %s names the existing local account %s, which is privileged or "
            "already linked to another identity (link it in the admin if that is intended)",
            subject,
            issuer,
            user.get_username(),
        )
        return False
    SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    logger.info("local user %s linked to %s at %s", user.get_username(), subject, issuer)
    return True


@transaction.atomic
def sso_user_update(*, user: AbstractBaseUser, email: str, idp_groups: Iterable[str]):
    """Bring a returning user in line with what the IdP says now: their email and their mapped groups."""
    if email and user.email != email:
        user.email = email
        user.save(update_fields=["email"])
    sso_groups_sync(user=user, idp_groups=idp_groups)
    return user


def _free_username(wanted: str, subject: str) -> str:
    """The wanted username made safe, or with a short suffix from the subject when it is taken."""
    user_model = get_user_model()
    base = _USERNAME_UNSAFE.sub("-", wanted)[:140] or "sso"
    if not user_model.objects.filter(username=base).exists():
        return base
    suffix = hashlib.sha256(subject.encode()).hexdigest()[:8]
    candidate = f"{base}-{suffix}"
    counter = 1
    while user_model.objects.filter(username=candidate).exists():
        counter += 1
        candidate = f"{base}-{suffix}-{counter}"
    return candidate
