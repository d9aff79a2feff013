"""Print a new Fernet key for FIELD_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from vms import crypto


class Command(BaseCommand):
    help = "Print a new encryption key for FIELD_ENCRYPTION_KEYS (put it first in the list when rotating)."

    def handle(self, *args, **options):
        self.stdout.write(crypto.generate_key())
