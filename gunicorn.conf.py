"""gunicorn settings for Fluence Portal; `gunicorn` started in the repository root reads this file."""

import os

wsgi_app = "fluence_portal.wsgi:application"

# WSGI folds X-Auth-Request-User and X_Auth_Request_User into one key, HTTP_X_AUTH_REQUEST_USER, so a
# client could slip an identity header past a proxy that only strips the hyphenated spelling. "drop"
# (gunicorn's default since 22, stated here so that nobody loosens it unknowingly) discards every header
# whose name has an underscore; "refuse" would answer 400 instead.
header_map = "drop"
# Headers listed here bypass header_map for trusted forwarders: never list the single sign-on headers.
forwarder_headers = "SCRIPT_NAME,PATH_INFO"

# Processes and threads (overridable on the command line). The portal spends most of a request waiting on
# Fluence, Redis and PostgreSQL, so threads (the gthread worker) carry the concurrency; a few processes use
# the cores. Every thread may hold one PostgreSQL connection: instances * workers * threads must stay
# below the server's max_connections.
workers = int(os.environ.get("GUNICORN_WORKERS") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
# PORT (as container platforms set it) binds every interface; without it gunicorn's 127.0.0.1:8000.
if os.environ.get("PORT"):
    bind = [f"0.0.0.0:{int(os.environ['PORT'])}"]
