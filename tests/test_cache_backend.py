"""The Redis cache backend (fluence_portal.cache): Django's, sharing one redis-py client per server.

Runs against the machine's Redis (REDIS_URL, else the local default); CI's second run also uses this
backend for the whole suite."""

import os
import threading
import uuid

import pytest
import redis
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from fluence_portal.cache import RedisCache, run_together
from fluence_portal.settings_test import redis_url_of_worker
from tests.factories import make_api_key
from vms import fetching, resilience, selectors

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


@pytest.mark.parametrize(
    "value", [b'{"vms": []}', b"", b"\x00starts with the marker", b"\x80\x05not a pickle"]
)
def test_bytes_are_stored_as_they_are_and_read_back_equal(shared_cache, value):
    shared_cache.set("body", value, 60)
    stored = redis.Redis.from_url(REDIS_URL).get(shared_cache.make_key("body"))
    assert stored == b"\x00" + value  # behind the marker byte, not pickled
    assert shared_cache.get("body") == value
    assert shared_cache.get_many(["body"]) == {"body": value}
    # Everything else as Django stores it: integers as digits (incr works), the rest pickled.
    shared_cache.set_many({"n": 7, "pair": ("token", value)}, 60)
    assert shared_cache.incr("n") == 8 and shared_cache.get("pair") == ("token", value)


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


class RoundTrips:
    """Counts what reaches Redis: each command sent alone, each pipeline once."""

    def __init__(self, monkeypatch):
        self.sent: list[str] = []
        command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

        def counted_command(client, *args, **options):
            self.sent.append(str(args[0]))
            return command(client, *args, **options)

        def counted_pipeline(pipe, *args, **options):
            self.sent.append("pipeline:" + ",".join(str(queued[0][0]) for queued in pipe.command_stack))
            return pipeline(pipe, *args, **options)

        monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
        monkeypatch.setattr(redis.client.Pipeline, "execute", counted_pipeline)


OPERATIONS = [
    ("add", "lock", "me", 30),
    ("get", "marker"),
    ("set", "data", (1, b"body"), 60),
    ("set", "marker", {"token": 1}, 60),
    ("get", "marker"),
    ("add", "lock", "you", 30),
    ("set", "gone", "soon", 0),
    ("delete", "lock"),
    ("delete", "lock"),
    ("get", "lock"),
    ("get_many", ["data", "missing"]),
    ("add_unless", "lock", "me", 30, ("data",)),
    ("add_unless", "lock", "me", 30, ("missing", "gone")),
]
ANSWERS = [
    True,
    None,
    None,
    None,
    {"token": 1},
    False,
    None,
    True,
    False,
    None,
    {"data": (1, b"body")},
    False,
    True,
]


def test_operations_run_together_in_one_round_trip_answer_as_one_call_each(shared_cache, monkeypatch):
    shared_cache.set("gone", "before", 60)
    trips = RoundTrips(monkeypatch)
    assert run_together(OPERATIONS, cache=shared_cache) == ANSWERS
    assert len(trips.sent) == 1 and trips.sent[0].startswith("pipeline:")
    assert shared_cache.get_many(["data", "marker", "gone", "lock"]) == {
        "data": (1, b"body"),
        "marker": {"token": 1},
        "lock": "me",
    }
    # Any other cache runs them one call each, with the same answers.
    assert run_together(OPERATIONS, cache=LocMemCache("run-together", {})) == ANSWERS


def test_what_no_pipeline_can_do_is_refused_before_anything_is_sent(shared_cache, monkeypatch):
    trips = RoundTrips(monkeypatch)
    with pytest.raises(ValueError, match="timeout 0"):
        run_together([("set", "a", 1, 60), ("add", "lock", "me", 0)], cache=shared_cache)
    with pytest.raises(ValueError, match="needs a timeout"):
        run_together([("set", "a", 1, 60), ("add_unless", "lock", "me", None, ())], cache=shared_cache)
    with pytest.raises(ValueError, match="unknown cache operation"):
        run_together([("set", "a", 1, 60), ("incr", "a")], cache=shared_cache)
    assert trips.sent == [] and shared_cache.get("a") is None


@pytest.mark.django_db
def test_a_list_refresh_that_misses_the_cache_costs_two_round_trips_to_redis(
    shared_cache, monkeypatch, user, sandbox
):
    """The gate (fresh marker, failure, deletions, cool-down, circuit) with the single-flight lock taken in
    the same step unless there is a fresh list; then the list stored with the lock released."""
    api_key = make_api_key(user, sandbox, secret="sbx_round_trips", vm_count=3)
    account = selectors.account_of(api_key)
    redis_cache = {
        "BACKEND": "fluence_portal.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": shared_cache.key_prefix,
    }
    with override_settings(CACHES={"default": redis_cache}):
        trips = RoundTrips(monkeypatch)
        result = fetching.fetch(account, api_key.secret.reveal(), api_key.generation)
        assert len(result.vms) == 3 and result.problem is None
        assert trips.sent == ["pipeline:MGET,EVAL", "pipeline:SET,SET,SET,DEL"]
        assert shared_cache.get(resilience.SingleFlight(api_key.pk).lock_key) is None  # released
        trips.sent.clear()
        again = fetching.fetch(account, api_key.secret.reveal(), api_key.generation)
        assert again.token == result.token and trips.sent == ["pipeline:MGET,EVAL"]  # fresh: no lock taken
        assert shared_cache.get(resilience.SingleFlight(api_key.pk).lock_key) is None


def test_the_lock_is_taken_only_while_there_is_no_fresh_list_nor_a_remembered_failure(shared_cache):
    take = [("add_unless", "lock", "me", 30, ("fresh", "problem"))]
    shared_cache.set("fresh", "marker", 60)
    assert run_together(take, cache=shared_cache) == [False] and shared_cache.get("lock") is None
    shared_cache.delete("fresh")
    shared_cache.set("problem", ("unavailable", "down"), 60)
    assert run_together(take, cache=shared_cache) == [False] and shared_cache.get("lock") is None
    shared_cache.delete("problem")
    assert run_together(take, cache=shared_cache) == [True] and shared_cache.get("lock") == "me"
    assert run_together(take, cache=shared_cache) == [False]  # held: not taken twice
    # Any other cache: the same answers, one call each.
    local = LocMemCache("add-unless", {})
    local.set("fresh", "marker", 60)
    assert run_together(take, cache=local) == [False]
    local.delete("fresh")
    assert run_together(take, cache=local) == [True] and run_together(take, cache=local) == [False]


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
