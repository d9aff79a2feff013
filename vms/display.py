"""Pure formatting helpers that turn VM values into the short text the pages show."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

from vms.fluence.models import Resource, ResourceFacts

MISSING = "—"

_MIB_UNITS = (("TiB", Decimal(1024 * 1024)), ("GiB", Decimal(1024)))

# The parsers keep every number far below this (vms.fluence.numbers); a larger one reaching a page anyway is
# shown as missing, like NaN, rather than as a wall of digits or an error.
_SHOWN_DIGITS = 40
_SHOWN_BELOW = Decimal(10) ** _SHOWN_DIGITS
# Rounding a number below _SHOWN_BELOW to cents or to 6 decimals needs at most 47 digits: exact here, where
# the default context (28 digits) raises InvalidOperation.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)


def _decimal(value: object) -> Decimal | None:
    """A finite Decimal small enough to show; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | str):
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            return None
    else:
        return None
    return number if number.is_finite() and number.copy_abs() < _SHOWN_BELOW else None


def _plain(number: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 4 -> "4", 1.50 -> "1.5", 1E+2 -> "100".
    A number too small to write out ("1E-50") keeps its exponent."""
    normal = number.normalize(_CONTEXT)
    if normal.is_zero():
        return "0"
    if normal.adjusted() < -_SHOWN_DIGITS:
        return str(normal)
    return format(normal, "f")


# --- money -----------------------------------------------------------------------------------------------


def _fixed(number: Decimal, step: Decimal, spec: str = "f") -> str:
    """`number` rounded half-even to `step` ("0.01"), formatted with `spec` (plain notation by default),
    never a negative zero."""
    rounded = number.quantize(step, context=_CONTEXT)
    return format(rounded.copy_abs() if rounded.is_zero() else rounded, spec)


def format_usdc(value: Decimal | None) -> str:
    """A USDC amount with its 6 decimals ("0.298160"), without the unit."""
    number = _decimal(value)
    return MISSING if number is None else _fixed(number, Decimal("0.000001"))


def _cents(value: Decimal | None, spec: str) -> str:
    """An amount rounded to cents; "<0.01" for a non-zero amount below a cent, so it never reads as free."""
    number = _decimal(value)
    if number is None:
        return MISSING
    if number != 0 and abs(number) < Decimal("0.01"):
        return "<0.01" if number > 0 else "-<0.01"
    return _fixed(number, Decimal("0.01"), spec)


def format_usdc_short(value: Decimal | None) -> str:
    """A USDC amount rounded to cents for totals ("17.85")."""
    return _cents(value, "f")


def format_money(value: Decimal | None) -> str:
    """An amount of any currency rounded to cents, with thousands separators ("1,423.10")."""
    return _cents(value, ",.2f")


def format_exact(value: Decimal | None) -> str:
    """An amount exactly as Fluence sent it, without exponent or trailing zeros ("0.0685", "50.005")."""
    number = _decimal(value)
    return MISSING if number is None else _plain(number)


# --- sizes -----------------------------------------------------------------------------------------------


def format_mib(mib: Decimal | None) -> str:
    """A size in MiB in the largest binary unit that keeps it >= 1: 4096 -> "4 GiB", 512 -> "512 MiB"."""
    number = _decimal(mib)
    if number is None:
        return MISSING
    for unit, size in _MIB_UNITS:
        if abs(number) >= size:
            return f"{_two_places(number / size)} {unit}"
    return f"{_two_places(number)} MiB"


def _two_places(number: Decimal) -> str:
    """A size rounded to two decimals, without trailing zeros: 4.00 -> "4", 3.725 -> "3.72"."""
    return _plain(number.quantize(Decimal("0.01"), context=_CONTEXT))


def format_gb(gigabytes: Decimal | None) -> str:
    """A size in decimal gigabytes, as today's API counts RAM and disks: 8 -> "8 GB", 0.5 -> "0.5 GB"."""
    number = _decimal(gigabytes)
    if number is None:
        return MISSING
    return f"{_two_places(number)} GB"


# --- places ----------------------------------------------------------------------------------------------

COUNTRIES: dict[str, str] = {
    # EU
    "AT": "Austria",
    "BE": "Belgium",
    "BG": "Bulgaria",
    "HR": "Croatia",
    "CY": "Cyprus",
    "CZ": "Czechia",
    "DK": "Denmark",
    "EE": "Estonia",
    "FI": "Finland",
    "FR": "France",
    "DE": "Germany",
    "GR": "Greece",
    "HU": "Hungary",
    "IE": "Ireland",
    "IT": "Italy",
    "LV": "Latvia",
    "LT": "Lithuania",
    "LU": "Luxembourg",
    "MT": "Malta",
    "NL": "Netherlands",
    "PL": "Poland",
    "PT": "Portugal",
    "RO": "Romania",
    "SK": "Slovakia",
    "SI": "Slovenia",
    "ES": "Spain",
    "SE": "Sweden",
    # rest of the EEA, and Europe beyond it
    "IS": "Iceland",
    "LI": "Liechtenstein",
    "NO": "Norway",
    "CH": "Switzerland",
    "GB": "United Kingdom",
    "UA": "Ukraine",
    "MD": "Moldova",
    "RS": "Serbia",
    "TR": "Türkiye",
    "GE": "Georgia",
    "AM": "Armenia",
    "KZ": "Kazakhstan",
    # Americas
    "US": "United States",
    "CA": "Canada",
    "MX": "Mexico",
    "BR": "Brazil",
    "AR": "Argentina",
    "CL": "Chile",
    "CO": "Colombia",
    "PE": "Peru",
    # Asia-Pacific, Middle East, Africa
    "JP": "Japan",
    "KR": "South Korea",
    "CN": "China",
    "HK": "Hong Kong",
    "TW": "Taiwan",
    "SG": "Singapore",
    "MY": "Malaysia",
    "TH": "Thailand",
    "VN": "Vietnam",
    "ID": "Indonesia",
    "PH": "Philippines",
    "IN": "India",
    "AU": "Australia",
    "NZ": "New Zealand",
    "AE": "United Arab Emirates",
    "SA": "Saudi Arabia",
    "QA": "Qatar",
    "BH": "Bahrain",
    "IL": "Israel",
    "ZA": "South Africa",
    "NG": "Nigeria",
    "KE": "Kenya",
    "EG": "Egypt",
    "MA": "Morocco",
}


def country_name(code: str | None) -> str:
    """The English name of an ISO 3166 alpha-2 code; the code itself when unknown."""
    if not code or not isinstance(code, str):
        return MISSING
    return COUNTRIES.get(code.strip().upper(), code)


# (country, UN/LOCODE city part) -> city name.
CITIES: dict[tuple[str, str], str] = {
    ("AE", "DXB"): "Dubai",
    ("AR", "BUE"): "Buenos Aires",
    ("AT", "VIE"): "Vienna",
    ("AU", "MEL"): "Melbourne",
    ("AU", "SYD"): "Sydney",
    ("BE", "BRU"): "Brussels",
    ("BG", "SOF"): "Sofia",
    ("BR", "SAO"): "São Paulo",
    ("CA", "MTL"): "Montreal",
    ("CA", "MTR"): "Montreal",
    ("CA", "TOR"): "Toronto",
    ("CA", "VAN"): "Vancouver",
    ("CH", "GVA"): "Geneva",
    ("CH", "ZRH"): "Zurich",
    ("CL", "SCL"): "Santiago",
    ("CZ", "PRG"): "Prague",
    ("DE", "BER"): "Berlin",
    ("DE", "DUS"): "Düsseldorf",
    ("DE", "FRA"): "Frankfurt",
    ("DE", "HAM"): "Hamburg",
    ("DE", "MUC"): "Munich",
    ("DE", "NUE"): "Nuremberg",
    ("DK", "CPH"): "Copenhagen",
    ("EE", "TLL"): "Tallinn",
    ("ES", "BCN"): "Barcelona",
    ("ES", "MAD"): "Madrid",
    ("FI", "HEL"): "Helsinki",
    ("FR", "LIL"): "Lille",
    ("FR", "LYS"): "Lyon",
    ("FR", "MRS"): "Marseille",
    ("FR", "PAR"): "Paris",
    ("FR", "RBX"): "Roubaix",
    ("FR", "SXB"): "Strasbourg",
    ("GB", "LON"): "London",
    ("GB", "MNC"): "Manchester",
    ("GR", "ATH"): "Athens",
    ("HK", "HKG"): "Hong Kong",
    ("HU", "BUD"): "Budapest",
    ("IE", "DUB"): "Dublin",
    ("IL", "TLV"): "Tel Aviv",
    ("IN", "BLR"): "Bengaluru",
    ("IN", "BOM"): "Mumbai",
    ("IN", "DEL"): "Delhi",
    ("IN", "MAA"): "Chennai",
    ("IT", "MIL"): "Milan",
    ("IT", "ROM"): "Rome",
    ("JP", "OSA"): "Osaka",
    ("JP", "TYO"): "Tokyo",
    ("KR", "SEL"): "Seoul",
    ("LT", "VNO"): "Vilnius",
    ("LU", "LUX"): "Luxembourg",
    ("LV", "RIX"): "Riga",
    ("MD", "KIV"): "Chișinău",
    ("MX", "MEX"): "Mexico City",
    ("MY", "KUL"): "Kuala Lumpur",
    ("NL", "AMS"): "Amsterdam",
    ("NL", "RTM"): "Rotterdam",
    ("NO", "OSL"): "Oslo",
    ("PL", "WAW"): "Warsaw",
    ("PT", "LIS"): "Lisbon",
    ("RO", "BUH"): "Bucharest",
    ("SE", "STO"): "Stockholm",
    ("SG", "SIN"): "Singapore",
    ("TR", "IST"): "Istanbul",
    ("TW", "TPE"): "Taipei",
    ("UA", "IEV"): "Kyiv",
    ("US", "ATL"): "Atlanta",
    ("US", "BOS"): "Boston",
    ("US", "CHI"): "Chicago",
    ("US", "DAL"): "Dallas",
    ("US", "DEN"): "Denver",
    ("US", "HOU"): "Houston",
    ("US", "LAS"): "Las Vegas",
    ("US", "LAX"): "Los Angeles",
    ("US", "MIA"): "Miami",
    ("US", "NYC"): "New York",
    ("US", "PDX"): "Portland",
    ("US", "PHX"): "Phoenix",
    ("US", "SEA"): "Seattle",
    ("US", "SFO"): "San Francisco",
    ("US", "SJC"): "San Jose",
    ("US", "SLC"): "Salt Lake City",
    ("US", "WAS"): "Washington",
    ("ZA", "CPT"): "Cape Town",
    ("ZA", "JNB"): "Johannesburg",
}

# City parts that name one city only in the table, for a datacenter without a country code.
_CITIES_BY_CODE: dict[str, str] = {}
for (_country, _city), _name in CITIES.items():
    _CITIES_BY_CODE[_city] = _name if _city not in _CITIES_BY_CODE else ""
_CITIES_BY_CODE = {city: name for city, name in _CITIES_BY_CODE.items() if name}


def city_name(locode_city: str | None, country_code: str | None = None) -> str:
    """The name of a UN/LOCODE city (`PAR` in `FR` -> "Paris"); the code itself when unknown."""
    if not locode_city or not isinstance(locode_city, str):
        return MISSING
    if not isinstance(country_code, str):
        country_code = None
    city = locode_city.strip().upper()
    if country_code:
        return CITIES.get((country_code.strip().upper(), city), locode_city)
    return _CITIES_BY_CODE.get(city, locode_city)


# --- times -----------------------------------------------------------------------------------------------


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _duration(delta: timedelta) -> str:
    """A non-negative duration in at most two units: "12 min", "3 h 12 min", "2 d 5 h", "9 d"."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days >= 7 or (days and not hours):
        return f"{days} d"
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def format_relative(when: datetime | None, now: datetime) -> str:
    """A moment relative to now: "in 3 h 12 min", "5 min ago", "just now"."""
    if not isinstance(when, datetime):
        return MISSING
    delta = _aware(when) - _aware(now)
    if abs(delta) < timedelta(minutes=1):
        return "just now"
    if delta > timedelta(0):
        return f"in {_duration(delta)}"
    return f"{_duration(-delta)} ago"


def format_age(created: datetime | None, now: datetime) -> str:
    """How long something has existed, in its largest unit: "3 d", "5 h", "12 min"."""
    if not isinstance(created, datetime):
        return MISSING
    delta = _aware(now) - _aware(created)
    if delta < timedelta(minutes=1):
        return "< 1 min"
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def format_data_age(when: datetime | None, now: datetime) -> str:
    """How old data is: "just now" (under 5 s), "12 s ago", "3 min ago", "2 h ago", "4 d ago". As
    static/app.js counts it between refreshes, so a page never says "just now" of older data."""
    if not isinstance(when, datetime):
        return MISSING
    seconds = max(0, int((_aware(now) - _aware(when)).total_seconds()))
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def format_utc(when: datetime | None) -> str:
    """An exact time in UTC: "2025-04-16 17:59:55 UTC"."""
    if not isinstance(when, datetime):
        return MISSING
    return _aware(when).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- resources -------------------------------------------------------------------------------------------


def resource_label(resource: Resource | ResourceFacts) -> str:
    """One resource as a person reads it: "2 vCPU", "4 GiB RAM", "25 GiB storage (SSD)", "1 public IPv4"
    (the storage kind and the IP version from its facts, when given with them: Vm.resource_facts)."""
    metadata = {}
    if isinstance(resource, ResourceFacts):
        resource, metadata = resource.resource, resource.metadata
    if not isinstance(resource, Resource):
        return MISSING
    type_ = (resource.type or "").upper()
    quantity = _decimal(resource.quantity)
    if type_ == "VCPU" and quantity is not None:
        return f"{_plain(quantity)} vCPU"
    mebibytes = resource.mebibytes if quantity is not None else None  # sized only from a showable quantity
    if type_ in ("RAM", "STORAGE") and mebibytes is not None:
        label = f"{format_mib(mebibytes)} {'RAM' if type_ == 'RAM' else 'storage'}"
        kind = metadata.get("type")
        if type_ == "STORAGE" and isinstance(kind, str) and kind.strip():
            label += f" ({kind.strip()[:20]})"
        return label
    if type_ == "PUBLIC_IP" and quantity is not None:
        version = metadata.get("version")
        version = str(version).strip()[:4] if isinstance(version, str | int) and str(version).strip() else "4"
        return f"{_plain(quantity)} public IPv{version}"
    name = "network bandwidth" if type_ == "NETWORK_BANDWIDTH" else type_.replace("_", " ")
    parts = [_plain(quantity) if quantity is not None else "", resource.unit or "", name]
    return " ".join(part for part in parts if part)


_RESOURCE_NAMES = {
    "VCPU": "vCPU",
    "RAM": "RAM",
    "STORAGE": "Storage",
    "PUBLIC_IP": "Public IP",
    "NETWORK_BANDWIDTH": "Network bandwidth",
    "GPU": "GPU",
}


def resource_name(type_: object) -> str:
    """A resource type as people name it: "VCPU" -> "vCPU", "PUBLIC_IP" -> "Public IP"; another one with
    its underscores read as spaces ("FPGA_CARD" -> "FPGA card")."""
    if not isinstance(type_, str) or not type_.strip():
        return MISSING
    known = _RESOURCE_NAMES.get(type_.strip().upper())
    if known:
        return known
    first, *rest = type_.strip().split("_")
    return " ".join([first, *(word.lower() for word in rest if word)])


_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\s]+")

# Hardware facts whose unit the API documentation (fluence-api.md) does not state: shown as sent,
# and said so, rather than with a guessed unit.
UNIT_NOT_STATED = "unit not stated by Fluence"


@dataclass(frozen=True, slots=True)
class HardwareFact:
    name: str  # "Sequential write speed"
    value: str
    note: str = ""  # "unit not stated by Fluence"


def fact_name(key: object) -> str:
    """A hardware fact's name as words: "sequentialWriteSpeed" -> "Sequential write speed"."""
    words = [word for word in _WORD_BREAK.split(str(key)) if word]
    if not words:
        return MISSING
    text = " ".join(word if word.isupper() and len(word) > 1 else word.lower() for word in words)
    return text[0].upper() + text[1:]


def hardware_facts(facts: object) -> list[HardwareFact]:
    """A resource's `details` or `metadata` as named facts, in Fluence's order. A number that measures
    something (a speed) gets a note when the API does not say in which unit."""
    if not isinstance(facts, Mapping):
        return []
    shown = []
    for key, value in facts.items():
        measured = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        note = UNIT_NOT_STATED if measured and str(key).lower().endswith("speed") else ""
        shown.append(HardwareFact(fact_name(key), str(value), note))
    return shown
