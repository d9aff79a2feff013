"""``python manage.py runsandbox``: serve the sandbox Fluence API until Ctrl-C."""

from __future__ import annotations

import ipaddress
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from vms.sandbox import DEMO_ACCOUNTS, SandboxServer, SandboxState


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "Serve a local, fake Fluence API (the sandbox) with the demo accounts, for demos and tests."
    # It reads no setting, database or secret (manage.py gives it fluence_portal.settings_sandbox).
    requires_system_checks: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_event = threading.Event()  # set it (or Ctrl-C, or SIGTERM) to stop serving

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
        parser.add_argument("--port", type=int, default=8099, help="port to bind (0 picks a free one)")
        parser.add_argument("--latency-ms", type=int, default=0, help="delay every API answer by this much")
        parser.add_argument(
            "--error-rate", type=float, default=0.0, help="share of API requests answered with 500 (0-1)"
        )
        parser.add_argument(
            "--vms-per-account",
            type=int,
            default=None,
            help="VMs per account, demo accounts included (default: 14/6/9/8 for the demo, 12 for new keys)",
        )
        parser.add_argument(
            "--deletion-delay", type=float, default=3.0, help="seconds until a deleted VM leaves the list"
        )
        parser.add_argument(
            "--allow-remote", action="store_true", help="allow binding an address other than loopback"
        )

    def handle(
        self, *args, host, port, latency_ms, error_rate, vms_per_account, deletion_delay, allow_remote, **opts
    ):
        if not allow_remote and not is_loopback(host):
            raise CommandError(
                f"Refusing to bind {host!r}: the sandbox has no real authentication. "
                "Use a loopback address, or pass --allow-remote."
            )
        if not 0 <= port <= 65535:
            raise CommandError("--port must be between 0 and 65535")
        if vms_per_account is not None and not 0 <= vms_per_account <= 200_000:
            raise CommandError("--vms-per-account must be between 0 and 200000")
        state_kwargs = {"deletion_delay": deletion_delay}
        if vms_per_account is not None:
            state_kwargs.update(default_vm_count=vms_per_account, demo_vm_count=vms_per_account)
        state = SandboxState(**state_kwargs)
        if latency_ms or error_rate:
            try:
                state.set_faults(latency_ms=latency_ms, error_rate=error_rate)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc

        try:
            server = SandboxServer(host=host, port=port, state=state).start()
        except OSError as exc:
            raise CommandError(f"Cannot bind {host}:{port}: {exc}") from exc

        stop = self.stop_event
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.stdout.write(self.style.SUCCESS(f"Fluence sandbox API at {server.url}"))
        self.stdout.write("Demo API keys (fake, for the sandbox only):")
        for key, spec in DEMO_ACCOUNTS.items():
            owner = spec.get("user") or "-"
            generation = f"generation {spec['generation']}"
            self.stdout.write(f"  {key:<28} {spec['label']:<11} {generation:<20} user: {owner}")
        self.stdout.write(
            "Any key matching sbx_<8-80 chars> is a new account of the baseline API "
            "(sbx_a_… generation A, sbx_b_… generation B). Control API: /_sandbox/stats"
        )
        self.stdout.write("Quit with CONTROL-C.")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.stdout.write("Sandbox stopped.")
