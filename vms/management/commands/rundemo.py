"""Start the local Fluence sandbox and the portal together, with demo users; Ctrl-C stops both."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from vms.demo_data import DEMO_GROUP, DEMO_SHARED_KEY_LABEL, DEMO_SHARER, demo_data_create
from vms.sandbox import SandboxServer


class Command(BaseCommand):
    help = "Run the portal against a local Fluence sandbox with demo users (what `make run` does)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where the portal listens")
        parser.add_argument("--sandbox-port", type=int, default=8099)

    def handle(self, *args, addr, sandbox_port, **options):
        sandbox = SandboxServer(host="127.0.0.1", port=sandbox_port)
        try:
            sandbox.start()
        except OSError as exc:
            raise CommandError(f"Cannot start the sandbox on port {sandbox_port}: {exc.strerror}") from None
        if sandbox.url not in settings.FLUENCE_API_URLS:
            sandbox.stop()
            raise CommandError(f"Add {sandbox.url} to FLUENCE_API_URLS so that the demo keys may reach it.")
        try:
            users = demo_data_create(sandbox_url=sandbox.url)
            host = addr if ":" in addr else f"127.0.0.1:{addr}"
            self.stdout.write(self.style.SUCCESS(f"\nFluence sandbox: {sandbox.url}"))
            self.stdout.write(self.style.SUCCESS(f"Fluence Portal:  http://{host}/\n"))
            self.stdout.write("Sign in as (passwords are new on every start):")
            for user in users:
                self.stdout.write(
                    f"  {user.username:<8} {user.password:<16} keys: {', '.join(user.key_labels)}"
                )
            self.stdout.write(
                f"Both are in the group {DEMO_GROUP}; {DEMO_SHARER} may share keys and shares "
                f"“{DEMO_SHARED_KEY_LABEL}” with {DEMO_GROUP} as viewer."
            )
            self.stdout.write("Press Ctrl-C to stop both.\n")
            call_command("runserver", addr, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()
            self.stdout.write("Sandbox stopped.")
