"""Typed failures of the Fluence API, each with a short message that is safe to show to a person."""

from __future__ import annotations

import re

from .numbers import retry_after_seconds

UPSTREAM_TEXT_LIMIT = 300

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_WHITESPACE = re.compile(r"\s+")


def clean_upstream_text(value: object, *, limit: int = UPSTREAM_TEXT_LIMIT) -> str | None:
    """Upstream text as one plain, bounded line: never trusted, escaped later by the templates."""
    if not isinstance(value, str):
        return None
    text = _WHITESPACE.sub(" ", _CONTROL_CHARS.sub(" ", value)).strip()
    if not text:
        return None
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


class FluenceError(Exception):
    """Fluence did not do what was asked. `str(exc)` is `exc.user_message`; it never holds the API key."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        upstream_message: str | None = None,
        upstream_code: str | None = None,
    ) -> None:
        self.status = status
        self.upstream_message = clean_upstream_text(upstream_message)
        self.upstream_code = clean_upstream_text(upstream_code, limit=60)
        self.detail = clean_upstream_text(detail)
        super().__init__(self.user_message)

    def _summary(self) -> str:
        if self.status is not None:
            return f"Fluence answered with an error (HTTP {self.status})"
        return "The request to Fluence failed"

    def _advice(self) -> str:
        return ""

    def _read_summary(self) -> str:
        return self._summary()

    def _read_advice(self) -> str:
        return self._advice()

    def _message(self, summary: str, advice: str) -> str:
        explanation = self.upstream_message or self.detail
        message = f"{summary}: {explanation.rstrip('.')}." if explanation else f"{summary}."
        return f"{message} {advice}" if advice else message

    @property
    def user_message(self) -> str:
        """What went wrong and what to do, for any request. It never claims a write happened or not: a
        caller of a non-idempotent request reads `may_have_reached_server` and says that itself."""
        return self._message(self._summary(), self._advice())

    @property
    def read_message(self) -> str:
        """The same for a read the portal repeats on its own (a VM list, refreshed in place): advice for
        reading, never a write's ("may have been received")."""
        return self._message(self._read_summary(), self._read_advice())

    def __str__(self) -> str:
        return self.user_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.user_message!r})"

    def __reduce__(self):
        # Rebuild from the attributes (not from `args`) so that a pickled error survives a cache round trip.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[FluenceError], state: dict) -> FluenceError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error.user_message)
    return error


class AuthError(FluenceError):
    """The key is missing, invalid or lacks a permission (Fluence has used 400, 401 and 403 for this)."""

    def _summary(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"Fluence refused this API key{status}"

    def _advice(self) -> str:
        return (
            "Check that the key is still valid and has the needed permissions; "
            "if it was replaced, add the new one."
        )


class ReadOnlyKey(AuthError):
    """Today's API answers 403 when a key without the `vms:write` scope asks for a change."""

    def _summary(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"Fluence refused the change: this key is read-only{status}"

    def _advice(self) -> str:
        return "Deleting needs a key with the vms:write scope; create one in the Fluence console and add it."


class NotFound(FluenceError):
    """The VM (or the API path) does not exist for this key."""

    def _summary(self) -> str:
        return "Fluence does not know this VM or address (HTTP 404)"

    def _advice(self) -> str:
        return "The VM may already be gone; reload the list."

    def _read_summary(self) -> str:
        return "Fluence has no VM list for this key at its address (HTTP 404)"

    def _read_advice(self) -> str:
        return "If this lasts, remove the key and add it again."


class NotAcceptable(FluenceError):
    """The VM does not accept this action in its current status (today's API: 406, `not_acceptable`)."""

    def _summary(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"Fluence does not allow this in the VM's current status{status}"

    def _advice(self) -> str:
        return "Wait until the VM has finished changing state, then try again."


class Conflict(FluenceError):
    """The request conflicts with the state of the VM or the account (409, `conflict`)."""

    def _summary(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"Fluence reports a conflict with the current state{status}"

    def _advice(self) -> str:
        return "Reload the list to see the VM's current state."


class InsufficientBalance(FluenceError):
    """The account's balance does not cover the request (`insufficient_balance`)."""

    def _summary(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"The Fluence account's balance is too low for this{status}"

    def _advice(self) -> str:
        return "Top up the account in the Fluence console."


class RateLimited(FluenceError):
    """Too many requests. `retry_after` is the server's hint in seconds; the client never sleeps on it."""

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, **kwargs) -> None:
        # Whatever the caller read from the header, kept as 0 … MAX_RETRY_AFTER_SECONDS (or None): building
        # the message, or a cool-down from it, never fails on infinity or NaN.
        self.retry_after = retry_after_seconds(retry_after)
        super().__init__(detail, **kwargs)

    def _summary(self) -> str:
        return "Fluence is limiting the number of requests for this key (HTTP 429)"

    def _advice(self) -> str:
        if self.retry_after is not None:
            seconds = max(1, round(self.retry_after))
            return f"Try again in {seconds} s."
        return "Try again in a moment."

    def _read_advice(self) -> str:
        if self.retry_after is not None:
            return f"The portal waits {max(1, round(self.retry_after))} s before asking again."
        return "The portal waits a moment before asking again."


class Unavailable(FluenceError):
    """Fluence could not be reached or failed on its side (5xx, refused or dropped connection).

    `may_have_reached_server` tells a caller of a non-idempotent request whether the outcome is unknown;
    such a caller words that itself (services.vm_delete): the messages here serve reads too.
    """

    def __init__(self, detail: str | None = None, *, may_have_reached_server: bool = False, **kwargs) -> None:
        self.may_have_reached_server = may_have_reached_server
        super().__init__(detail, **kwargs)

    def _summary(self) -> str:
        if self.status is not None:
            return f"Fluence is unavailable (HTTP {self.status})"
        return "Fluence could not be reached"

    def _advice(self) -> str:
        return "Try again in a moment."

    def _read_advice(self) -> str:
        return "The portal tries again at the next refresh."


class UpstreamTimeout(Unavailable):
    """Fluence did not answer in time. After a read timeout the request may have been carried out."""

    def _summary(self) -> str:
        if self.may_have_reached_server:
            return "Fluence did not answer in time"
        return "Fluence could not be reached in time"


class TooLarge(Unavailable):
    """Fluence's answer grew past the size the portal reads (FLUENCE_MAX_RESPONSE_BYTES): the rest was
    abandoned. An outage for the circuit breaker, and never retried (it would be read again)."""

    def _summary(self) -> str:
        return "Fluence sent more than the portal reads"

    def _advice(self) -> str:
        return (
            "Try again later; if the account really has that many VMs, an administrator can raise the limit."
        )

    def _read_advice(self) -> str:
        return "If the account really has that many VMs, an administrator can raise the limit."


class BadResponse(FluenceError):
    """Fluence answered, but with something the portal cannot read (not JSON, wrong shape, bad field)."""

    def _summary(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"Fluence sent an answer the portal cannot read{status}"

    def _advice(self) -> str:
        return "Fluence may have changed its API. Try again later; if this lasts, tell the administrator."

    def _read_advice(self) -> str:
        return (
            "Fluence may have changed its API. The portal keeps asking; if it lasts, tell the administrator."
        )
