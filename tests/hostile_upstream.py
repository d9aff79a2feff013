"""Upstream text carrying HTML and script payloads: sandbox VMs made of them, and an API whose errors are."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
SVG = '"><svg onload="window.__pwned=1">'
JS_URL = "javascript:window.__pwned=1//ubuntu.img"
WEB_URL = 'https://images.example.com/"><svg/onload=window.__pwned=1>.img'  # a real link, hostile inside

NAMED_VM_ID = "0x" + "e" * 39 + "1"
LINKED_VM_ID = "0x" + "e" * 39 + "2"


def add_hostile_vms(state, key: str) -> None:
    """Two VMs whose every free-text field is a payload; one's OS image is a `javascript:` URL."""
    datacenter = {
        "id": SVG,
        "countryCode": "DE",
        "cityCode": IMG,
        "cityIndex": 1,
        "tier": 3,
        "certifications": [SCRIPT, IMG, SVG],
    }
    resources = [
        {"type": "VCPU", "quantity": 2, "details": {"model": SCRIPT}, "metadata": {"brand": IMG, SVG: "x"}},
        {"type": "RAM", "quantity": 4096, "details": {"type": SVG}, "metadata": {"manufacturer": SCRIPT}},
        {"type": IMG, "quantity": 1, "details": {}, "metadata": {}},
    ]
    state.add_vm(
        key,
        name=f"evil {SCRIPT}{IMG}",
        status="ACTIVE",
        id=NAMED_VM_ID,
        osImage=JS_URL,
        datacenter=datacenter,
        resources=resources,
    )
    state.add_vm(
        key,
        name=f"linked {SVG}",
        status="ACTIVE",
        id=LINKED_VM_ID,
        osImage=WEB_URL,
    )


class HostileApi:
    """A Fluence API that refuses every key with an error message made of payloads."""

    message = f"Invalid key {SCRIPT}{IMG}{SVG}"

    def __init__(self):
        message = self.message

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"error": message}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileApi:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
