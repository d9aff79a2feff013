"""Metrics under several worker processes: what each worker counts adds up in one scrape, and
gunicorn.conf.py gives every instance an empty directory of its own (real instances: test_scale_out_metrics).
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

BASE_DIR = Path(__file__).resolve().parent.parent

WORKER = """
import django; django.setup()
from vms import metrics
from vms.fluence.client import ApiRequest
for _ in range({count}):
    metrics.vm_list_cache("hit")
    listed = ApiRequest("GET", "/vms/v3", operation="list")
    metrics.upstream_call("http://127.0.0.1:8099", "a", listed, "200", 0.2)
"""
SCRAPE = """
import django; django.setup()
from prometheus_client import generate_latest
from fluence_portal.metrics_endpoint import scrape_registry
print(generate_latest(scrape_registry()).decode())
"""


def _python(code: str, metrics_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fluence_portal.settings_test",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_counts_of_every_worker_process_add_up_in_one_scrape(tmp_path):
    _python(WORKER.format(count=3), tmp_path)
    _python(WORKER.format(count=4), tmp_path)

    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(_python(SCRAPE, tmp_path))
        for sample in family.samples
    }

    def value(name, **labels):
        return samples.get((name, frozenset(labels.items())))

    upstream = {"base_url": "http://127.0.0.1:8099", "generation": "a", "operation": "list", "outcome": "200"}
    histogram = "fluence_portal_upstream_request_duration_seconds"
    assert value("fluence_portal_vm_list_cache_lookups_total", result="hit") == 7
    assert value(f"{histogram}_count", **upstream) == 7
    assert value(f"{histogram}_sum", **upstream) == pytest.approx(1.4)
    assert value(f"{histogram}_bucket", **upstream, le="0.1") == 0
    assert value(f"{histogram}_bucket", **upstream, le="0.25") == 7
    # And the gauges read at scrape time are there too.
    assert value("fluence_portal_circuit_state", base_url="http://127.0.0.1:8099", state="closed") == 1


# --- gunicorn.conf.py ---------------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_config(monkeypatch):
    """gunicorn.conf.py's hooks, run as its master runs them: before prometheus_client is imported."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # put back as it was after the test
    config = runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))
    monkeypatch.delitem(sys.modules, "prometheus_client")
    return config


def test_each_instance_gets_a_fresh_directory_removed_when_it_stops(gunicorn_config, monkeypatch):
    gunicorn_config["on_starting"](None)
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.is_dir() and directory.name.startswith("fluence-portal-metrics-")
    assert not list(directory.iterdir())

    gunicorn_config["on_exit"](None)
    assert not directory.exists()


def test_a_named_directory_is_emptied_at_start_and_kept(gunicorn_config, tmp_path, monkeypatch):
    (tmp_path / "counter_4242.db").write_bytes(b"old counts")
    (tmp_path / "notes.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    gunicorn_config["on_starting"](None)
    gunicorn_config["on_exit"](None)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_a_dead_worker_is_marked_so(gunicorn_config, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_config["on_starting"](None)
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")

    gunicorn_config["child_exit"](None, type("Worker", (), {"pid": 4242})())

    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter_4242.db"]  # counters stay


def test_preload_app_is_refused(gunicorn_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", object())  # the app was imported by the master

    with pytest.raises(RuntimeError, match="preload_app"):
        gunicorn_config["on_starting"](None)
