"""The sandbox in a process of its own, driven through its control API: for benchmarks, so that the
stand-in for Fluence does not share the portal's interpreter (and its GIL), as the real one would not."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


class RemoteSandbox:
    def __init__(self):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fluence_portal.settings_test",
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runsandbox", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = self._read_url()
        self.http = requests.Session()
        self.state = self  # the same calls as SandboxServer().state, over HTTP

    def _read_url(self) -> str:
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            if found:
                return found.group(0)
        self.process.kill()
        raise RuntimeError("the sandbox did not start: " + "".join(seen)[-2000:])

    def _post(self, path, payload=None, method="POST"):
        response = self.http.request(
            method, f"{self.url}/_sandbox/{path}", data=json.dumps(payload or {}), timeout=60
        )
        response.raise_for_status()
        return response.json()

    def configure_account(self, key, *, vm_count=12, include_example=False, **options):
        """`options` as the control API takes them (generation, page_base, max_per_page, …)."""
        return self._post(
            "accounts", {"key": key, "vm_count": vm_count, "include_example": include_example, **options}
        )

    def set_faults(self, **fields):
        return self._post("faults", fields)

    def clear_faults(self, key=None):
        return self._post("faults", {"key": key} if key else {}, method="DELETE")

    def reset_counts(self):
        return self._post("reset-counts")

    def request_count(self, *, key=None, path=None, method=None):
        """Counts by key fingerprint (the benchmark's keys end differently), or the total."""
        stats = self.http.get(f"{self.url}/_sandbox/stats", timeout=30).json()
        if key is not None:
            return stats["by_key"].get("…" + key[-4:], 0)
        return stats["total"]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
