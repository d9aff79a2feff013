"""Rotating SECRET_KEY: sessions survive while the old key is a fallback, and end once it is dropped."""

from django.test import Client
from django.urls import reverse

OLD_KEY = "old-secret-key-for-rotation-test-0123456789-abcdefghijklmnopqrstuvwxyz"
NEW_KEY = "new-secret-key-for-rotation-test-9876543210-zyxwvutsrqponmlkjihgfedcba"


def _signed_in(client) -> bool:
    return client.get(reverse("vms:keys")).status_code == 200


def test_sessions_survive_rotation_while_the_old_key_is_a_fallback(user, settings):
    settings.SECRET_KEY = OLD_KEY
    active, idle = Client(), Client()
    active.force_login(user)
    idle.force_login(user)

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    assert _signed_in(active)  # and its session is moved to the new key on the way

    settings.SECRET_KEY_FALLBACKS = []
    assert _signed_in(active)
    assert not _signed_in(idle)  # not seen during the fallback period: signed out


def test_without_a_fallback_every_session_ends(client, user, settings):
    settings.SECRET_KEY = OLD_KEY
    client.force_login(user)

    settings.SECRET_KEY = NEW_KEY

    assert not _signed_in(client)
