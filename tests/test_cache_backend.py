"""The Redis cache backend (fluence_portal.cache): Django's, sharing one redis-py client per server.

Runs against the machine's Redis (REDIS_URL, else the local default); CI's second run also uses this
backend for the whole suite."""

import os
import threading
import uuid

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from fluence_portal.cache import RedisCache
from fluence_portal.settings_test import redis_url_of_worker

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


@pytest.fixture
def shared_cache():
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {REDIS_URL}")
    backend = RedisCache(REDIS_URL, {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})
    yield backend
    # Only this test's keys (its own prefix): the database may hold the rest of the suite's sessions.
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{backend.key_prefix}:*"):
        client.delete(key)


def test_one_client_serves_every_call(shared_cache):
    client = shared_cache._cache.get_client()
    assert shared_cache._cache.get_client(write=True) is client
    assert shared_cache._cache.get_client("some key") is client


def test_every_operation_the_portal_uses(shared_cache):
    assert shared_cache.add("lock", "me", 30) and not shared_cache.add("lock", "you", 30)
    assert shared_cache.get("lock") == "me"
    shared_cache.set_many({"a": (1, b"body"), "b": {"x": 1.5}}, 60)
    assert shared_cache.get_many(["a", "b", "missing"]) == {"a": (1, b"body"), "b": {"x": 1.5}}
    shared_cache.set("n", 1, 60)
    assert shared_cache.incr("n") == 2
    shared_cache.delete_many(["a", "b"])
    shared_cache.delete("lock")
    assert shared_cache.get_many(["a", "b", "lock"]) == {}


def test_threads_share_the_client_safely(shared_cache):
    errors = []

    def work(index):
        try:
            for round_ in range(50):
                shared_cache.set(f"t{index}", round_, 60)
                assert shared_cache.get(f"t{index}") == round_
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert shared_cache.get_many([f"t{index}" for index in range(8)]) == {
        f"t{index}": 49 for index in range(8)
    }


# --- the suite on every core: one Redis database per pytest-xdist worker --------------------------------


@pytest.mark.parametrize(
    ("redis_url", "worker", "worker_url"),
    [
        ("redis://127.0.0.1:6379/8", "gw0", "redis://127.0.0.1:6379/9"),
        ("redis://127.0.0.1:6379/8", "gw1", "redis://127.0.0.1:6379/10"),
        ("redis://127.0.0.1:6379", "gw0", "redis://127.0.0.1:6379/1"),
        (
            "redis://:secret@cache:6379/15?socket_timeout=2",
            "gw0",
            "redis://:secret@cache:6379/0?socket_timeout=2",
        ),
        ("redis://127.0.0.1:6379/8", "gw15", "redis://127.0.0.1:6379/8"),  # 16 workers: every database once
        ("unix:///run/redis.sock?db=3", "gw2", "unix:///run/redis.sock?db=6"),
    ],
)
def test_each_xdist_worker_has_a_redis_database_of_its_own(redis_url, worker, worker_url):
    assert redis_url_of_worker(redis_url, worker) == worker_url


def test_a_seventeenth_worker_is_refused_rather_than_sharing_a_database():
    with pytest.raises(ImproperlyConfigured, match="at most 16 workers"):
        redis_url_of_worker("redis://127.0.0.1:6379/0", "gw16")
