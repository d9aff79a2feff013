"""WSGI entry point (gunicorn fluence_portal.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fluence_portal.settings")
application = get_wsgi_application()
