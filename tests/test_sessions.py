"""Sessions in the shared cache (fluence_portal.sessions): Django's, read in one round trip with the few
cache entries a page needs before its database reads (the table counter of vms.table_version)."""

import pytest
from django.core.cache import cache
from django.test import Client

from tests.test_table_version import _render
from vms import table_version

pytestmark = pytest.mark.django_db

CACHE_SESSIONS = "fluence_portal.sessions"


@pytest.fixture
def cached_sessions(settings):
    settings.SESSION_ENGINE = CACHE_SESSIONS


@pytest.fixture
def cache_reads(monkeypatch):
    """The keys of each read a request makes (one list per round trip: LocMemCache's get_many is a loop of
    get, not reads of their own)."""
    reads: list[list[str]] = []
    inside = [False]
    get, get_many = cache.get, cache.get_many

    def one(key, *args, **kwargs):
        if not inside[0]:
            reads.append([key])
        return get(key, *args, **kwargs)

    def many(keys, *args, **kwargs):
        reads.append(list(keys))
        inside[0] = True
        try:
            return get_many(keys, *args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(cache, "get", one)
    monkeypatch.setattr(cache, "get_many", many)
    return reads


def test_a_session_is_read_in_one_round_trip_with_the_table_counter(cached_sessions, user, cache_reads):
    client = Client()
    client.force_login(user)
    table_version.bump_epoch()
    session = client.session.__class__(client.session.session_key)
    cache_reads.clear()
    assert session["_auth_user_id"] == str(user.pk)
    assert cache_reads == [[session.cache_key, table_version.EPOCH_KEY]]
    assert session.read_along == {table_version.EPOCH_KEY: cache.get(table_version.EPOCH_KEY)}


def test_a_full_render_takes_the_counter_read_with_its_session(
    cached_sessions, alice_client, api_key, cache_reads
):
    _render(alice_client)  # warm: columns and unknown outcomes kept for this epoch
    cache_reads.clear()
    version = _render(alice_client, url="/?page=1")
    with_counter = [keys for keys in cache_reads if table_version.EPOCH_KEY in keys]
    assert len(with_counter) == 1 and with_counter[0][0].startswith("django.contrib.sessions.cache")
    assert version  # and the version it made holds: the next poll is unchanged
    assert (
        alice_client.get("/?page=1", HTTP_HX_REQUEST="true", HTTP_X_VM_TABLE_VERSION=version).status_code
        == 204
    )
