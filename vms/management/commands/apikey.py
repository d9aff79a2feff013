"""Add, list and remove API keys from provisioning scripts; the secret is read from standard input only."""

import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from vms import services
from vms.models import ApiKey


class Command(BaseCommand):
    help = "Manage stored Fluence API keys. `add` reads the key from standard input, never from arguments."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a key (the secret is read from standard input)")
        add.add_argument("--user", required=True, help="username of the owner")
        add.add_argument("--label", required=True)
        add.add_argument(
            "--base-url", default=None, help="an allowlisted Fluence API URL (default: the first)"
        )
        add.add_argument(
            "--no-verify", action="store_true", help="store without trying the key against Fluence"
        )
        add.add_argument(
            "--generation",
            choices=services.GENERATION_CHOICES,
            default=services.AUTO,
            help="which Fluence API the key speaks: auto (ask Fluence, the default), b (current API), "
            "a (2025 API, v3) or baseline (2025 draft API, v2)",
        )
        listing = sub.add_parser("list", help="list keys (label, fingerprint, owner; never the secret)")
        listing.add_argument("--user", default=None)
        remove = sub.add_parser("remove", help="remove a key")
        remove.add_argument("--user", required=True)
        remove.add_argument("--label", required=True)

    def handle(self, *args, action, **options):
        getattr(self, f"_{action}")(**options)

    def _user(self, username):
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None

    def _add(self, *, user, label, base_url, no_verify, generation, **_):
        owner = self._user(user)
        if sys.stdin.isatty():
            self.stderr.write("Paste the API key and press Enter:")
        secret = sys.stdin.readline().strip()
        if not secret:
            raise CommandError("No API key on standard input.")
        base_url = base_url or (settings.FLUENCE_API_URLS[0] if settings.FLUENCE_API_URLS else "")
        try:
            api_key = services.apikey_create(
                owner=owner,
                label=label,
                secret=secret,
                base_url=base_url,
                generation=generation,
                verify=not no_verify,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            f"Added key {api_key.pk}: {api_key.label} (…{api_key.last_four}) for {owner}, "
            f"speaking the {api_key.get_generation_display()}"
        )

    def _list(self, *, user, **_):
        api_keys = ApiKey.objects.select_related("owner").order_by("owner__username", "label")
        if user:
            api_keys = api_keys.filter(owner=self._user(user))
        for api_key in api_keys:
            self.stdout.write(
                f"{api_key.pk}\t{api_key.owner.get_username()}\t{api_key.label}\t…{api_key.last_four}"
                f"\t{api_key.base_url}\t{api_key.generation}"
            )

    def _remove(self, *, user, label, **_):
        api_key = ApiKey.objects.filter(owner=self._user(user), label=label).first()
        if api_key is None:
            raise CommandError(f"{user} has no key labelled {label!r}.")
        services.apikey_delete(user=api_key.owner, api_key=api_key)
        self.stdout.write(f"Removed key {label!r} of {user}.")
