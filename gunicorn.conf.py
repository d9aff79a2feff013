"""gunicorn settings for Fluence Portal; `gunicorn` started in the repository root reads this file."""

wsgi_app = "fluence_portal.wsgi:application"

# WSGI folds X-Auth-Request-User and X_Auth_Request_User into one key, HTTP_X_AUTH_REQUEST_USER, so a
# client could slip an identity header past a proxy that only strips the hyphenated spelling. "drop"
# (gunicorn's default since 22, stated here so that nobody loosens it unknowingly) discards every header
# whose name has an underscore; "refuse" would answer 400 instead.
header_map = "drop"
# Headers listed here bypass header_map for trusted forwarders: never list the single sign-on headers.
forwarder_headers = "SCRIPT_NAME,PATH_INFO"
