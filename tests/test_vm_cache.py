"""What one process keeps of the lists it has parsed: the latest of each key, not one per refresh."""

import gc
import json
import tracemalloc

from vms import vm_cache
from vms.fluence.client import ADAPTERS
from vms.sandbox.state import SandboxState

KEY_ID = 7


def _parsed_list(vm_count: int):
    state = SandboxState()
    state.configure_account("sbx_memo_test", vm_count=vm_count)
    body = json.dumps(state.vms_for("sbx_memo_test")).encode()
    return lambda: ADAPTERS["baseline"].read_cached(body)


def _retained_after(stores: int, parse) -> int:
    """Bytes still held once `stores` refreshes of the key have been stored (and their answers dropped)."""
    vm_cache.forget_memo()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(stores):
            vm_cache.store(KEY_ID, parse(), "baseline")
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        vm_cache.forget_memo()


def test_a_key_refreshed_many_times_keeps_one_parsed_list():
    # A key watched all day is refreshed every 30 s: each refresh replaces the list the process keeps.
    parse = _parsed_list(300)
    one = _retained_after(1, parse)
    assert one > 100_000  # the measurement sees a parsed list at all
    assert _retained_after(20, parse) < 2 * one


def test_the_latest_list_is_read_again_without_the_shared_cache_and_an_older_one_is_not():
    parse = _parsed_list(5)
    older = vm_cache.store(KEY_ID, parse(), "baseline")
    latest = vm_cache.store(KEY_ID, parse(), "baseline")
    marker = vm_cache.Marker(token=latest.token, fetched_at=latest.fetched_at, generation="baseline")
    vm_cache.cache.delete(vm_cache.data_key(KEY_ID))  # only the process's own copy is left
    assert vm_cache.load(KEY_ID, marker).answer is latest.answer
    stale = vm_cache.Marker(token=older.token, fetched_at=older.fetched_at, generation="baseline")
    assert vm_cache.load(KEY_ID, stale) is None
