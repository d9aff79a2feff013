"""Exception reports (admin e-mails, logged 500s, the DEBUG page) that never show an API key."""

import functools
import inspect
import re
from collections.abc import Mapping

from django.views.debug import SafeExceptionReporterFilter

# Local variables, POST fields and mapping keys with these names hold (or may hold) a secret.
_SECRET_NAMES = re.compile(
    r"secret|api_?key|passw|token|auth|cookie|session|fernet|plaintext|credential|signature", re.IGNORECASE
)
_MAX_DEPTH = 4


@functools.cache
def _transport_codes() -> frozenset:
    """The code of the functions that put the key on the wire: every frame at or below them is hidden."""
    from vms.fluence import client

    key_auth = getattr(client, "KeyAuth", None)
    functions = [getattr(client.FluenceClient, "_perform", None), key_auth and vars(key_auth).get("__call__")]
    return frozenset(inspect.unwrap(function).__code__ for function in functions if function)


class SecretHidingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus: secret-named variables and mapping entries in every frame, every variable of
    the HTTP transport's frames, secret-named POST fields, and connection URLs among the settings."""

    hidden_settings = re.compile(
        r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|_URL$|LOCATION", flags=re.IGNORECASE
    )

    def is_active(self, request) -> bool:
        # Django's filter stands down under DEBUG; a debug page on a reachable host (a staging box, a
        # port left open) would then show decrypted keys to whoever triggers an error. Always on.
        return True

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if not self.is_active(request) or not parameters:
            return parameters
        parameters = parameters.copy()
        for name in parameters:
            if _SECRET_NAMES.search(name):
                parameters[name] = self.cleansed_substitute
        return parameters

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = list(super().get_traceback_frame_variables(request, tb_frame))
        if not self.is_active(request):
            return variables
        if self._in_transport(tb_frame):
            return [(name, self.cleansed_substitute) for name, _ in variables]
        return [
            (name, self.cleansed_substitute if _SECRET_NAMES.search(name) else self._cleanse_value(value))
            for name, value in variables
        ]

    def _in_transport(self, tb_frame) -> bool:
        codes = _transport_codes()
        frame = tb_frame
        while frame is not None:
            if frame.f_code in codes:
                return True
            frame = frame.f_back
        return False

    def _cleanse_value(self, value, depth: int = 0):
        if depth >= _MAX_DEPTH or isinstance(value, str | bytes):
            return value
        if isinstance(value, Mapping):
            try:
                return {
                    key: self.cleansed_substitute
                    if isinstance(key, str) and _SECRET_NAMES.search(key)
                    else self._cleanse_value(item, depth + 1)
                    for key, item in value.items()
                }
            except Exception:
                return self.cleansed_substitute
        if isinstance(value, list | tuple):
            return [self._cleanse_value(item, depth + 1) for item in value]
        return value
