"""Bounded reading of numbers from Fluence: headers and JSON."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from functools import lru_cache

# --- Retry-After -----------------------------------------------------------------------------------------

# The longest wait the portal takes from a server's hint: past an hour a person reloads anyway, and a
# cool-down (resilience.cooldown_start) must not lock a key out for days on one odd header.
MAX_RETRY_AFTER_SECONDS = 3600

# RFC 9110 delay-seconds: ASCII digits only ("²".isdigit() is True, and float("²") raises).
_DELAY_SECONDS = re.compile(r"\A[0-9]+\Z")
_HTTP_DATE_LIMIT = 64  # an HTTP date is 29 characters; anything much longer is no date


def retry_after_seconds(value: object) -> float | None:
    """A number of seconds to wait, clamped to 0 … MAX_RETRY_AFTER_SECONDS; None when it is no number (NaN,
    a bool, text). Infinity and numbers too large for a float wait the maximum. Never raises."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        seconds = math.inf if value > 0 else 0.0
    except ValueError:  # a signalling NaN
        return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), float(MAX_RETRY_AFTER_SECONDS))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date, clamped to
    0 … MAX_RETRY_AFTER_SECONDS. None when unusable. Never raises."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if _DELAY_SECONDS.match(value):
        digits = value.lstrip("0")
        # More digits than an hour has seconds: the maximum, without turning 400 digits into a number.
        if len(digits) > len(str(MAX_RETRY_AFTER_SECONDS)):
            return float(MAX_RETRY_AFTER_SECONDS)
        return retry_after_seconds(int(digits or "0"))
    if not value or len(value) > _HTTP_DATE_LIMIT:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return retry_after_seconds((when - now).total_seconds())


# --- decimals in JSON ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bounds:
    """What a plausible number of one kind looks like; anything beyond is read as unreadable."""

    below: Decimal  # every value's magnitude stays under this
    max_digits: int  # significant digits (trailing zeros aside)
    max_decimals: int  # digits after the point (trailing zeros aside)


# Money: one VM's price, a balance, what a VM has cost. Real amounts are a few dollars per day; a trillion
# is beyond any account. 18 digits is the precision of Ethereum tokens, and three times USDC's 6 decimals.
MONEY = Bounds(below=Decimal(10) ** 12, max_digits=18, max_decimals=18)

# A resource quantity: cores, MiB, GB, IPs, Mbps. Not 10^9: a TiB counted in KiB (1.07 x 10^9) or 10 Gbit/s
# counted in bit/s (10^10) are real; 10^12 MiB is an exbibyte.
QUANTITY = Bounds(below=Decimal(10) ** 12, max_digits=18, max_decimals=9)

# Plain decimal notation in ASCII: no exponent, no "NaN", no underscores, no unicode digits.
DECIMAL_TEXT = re.compile(r"\A-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
DECIMAL_TEXT_LIMIT = 64
_INT_BITS_LIMIT = 128  # far past any bound above: larger ints are refused before becoming a Decimal


def within(number: Decimal, bounds: Bounds) -> bool:
    """Whether a Decimal is finite and inside `bounds`. Context-free: never rounds, never raises."""
    if not number.is_finite() or number.copy_abs() >= bounds.below:
        return False
    _, digits, exponent = number.as_tuple()
    trailing = len(digits) - len(bytes(digits).rstrip(b"\x00"))  # digits are 0-9: as bytes, zeros strip
    if trailing == len(digits):
        return True  # zero
    return len(digits) - trailing <= bounds.max_digits and -(exponent + trailing) <= bounds.max_decimals


@lru_cache(maxsize=16)
def _whole_limit(bounds: Bounds) -> int:
    """Every whole number of smaller magnitude is inside `bounds` (fewer digits than it allows)."""
    return min(int(bounds.below), 10**bounds.max_digits)


def bounded_decimal(value: object, bounds: Bounds) -> Decimal | None:
    """`value` as a Decimal when it is a plausible number of its kind; None otherwise. Never raises.

    `value` may be a Decimal, an int, a float (made exact through its repr) or text in plain decimal
    notation (DECIMAL_TEXT). None for bools, NaN, infinities, exponents in text, and anything beyond
    `bounds`."""
    if isinstance(value, bool):
        return None
    # The common cases, inside `bounds` by their size alone: a small whole number, or its digits as text.
    if type(value) is int and -_whole_limit(bounds) < value < _whole_limit(bounds):
        return Decimal(value)
    if (
        type(value) is str
        and len(value) < len(str(_whole_limit(bounds)))
        and value.isascii()
        and value.isdigit()
    ):
        return Decimal(value)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if value.bit_length() > _INT_BITS_LIMIT:
            return None
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > DECIMAL_TEXT_LIMIT or not DECIMAL_TEXT.match(value):
            return None
        number = Decimal(value)
    else:
        return None
    return number if within(number, bounds) else None
