"""The text the pages show for money, sizes, places, times and resources."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.template import Context, Template

from vms.display import (
    city_name,
    country_name,
    format_age,
    format_exact,
    format_gb,
    format_mib,
    format_money,
    format_relative,
    format_usdc,
    format_usdc_short,
    format_utc,
    hardware_facts,
    resource_label,
    resource_name,
)
from vms.fluence import Resource
from vms.fluence.models import ResourceFacts

NOW = datetime(2025, 4, 16, 14, 47, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.298160"), "0.298160"),
        (Decimal("0.29816"), "0.298160"),
        (Decimal("17.846"), "17.846000"),
        (Decimal("2.4352"), "2.435200"),
        (Decimal("0.30697"), "0.306970"),
        (Decimal(0), "0.000000"),
        (Decimal("-0"), "0.000000"),
        (Decimal("1234567.1"), "1234567.100000"),
        (Decimal("0.0000005"), "0.000000"),  # half-even
        (Decimal("0.0000015"), "0.000002"),
        (Decimal("-1.5"), "-1.500000"),
        (Decimal("1E+30"), "1000000000000000000000000000000.000000"),
        (5, "5.000000"),
        (None, "—"),
        (Decimal("NaN"), "—"),
        (Decimal("Infinity"), "—"),
        (1.5, "—"),  # never a float
        ("", "—"),
    ],
)
def test_format_usdc(value, text):
    assert format_usdc(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("17.846"), "17.85"),
        (Decimal("0.298160"), "0.30"),
        (Decimal("0.004"), "<0.01"),
        (Decimal(0), "0.00"),
        (Decimal("1234.5"), "1234.50"),
        (None, "—"),
    ],
)
def test_format_usdc_short(value, text):
    assert format_usdc_short(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1423.1"), "1,423.10"),  # totals of many VMs read with thousands separators
        (Decimal("1.644"), "1.64"),
        (Decimal("0.125"), "0.12"),  # half-even, as Fluence's own cents
        (Decimal("0.004"), "<0.01"),  # a cheap VM never reads as free
        (Decimal("-0.004"), "-<0.01"),
        (Decimal("-0.000"), "0.00"),  # never a negative zero
        (Decimal("1E+6"), "1,000,000.00"),
        (None, "—"),
        (Decimal("NaN"), "—"),
    ],
)
def test_format_money(value, text):
    assert format_money(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("0.0685"), "0.0685"), (Decimal("50.0050"), "50.005"), (Decimal("1E+2"), "100"), (None, "—")],
)
def test_format_exact(value, text):
    assert format_exact(value) == text


@pytest.mark.parametrize(
    ("gigabytes", "text"),
    [(Decimal(8), "8 GB"), (8, "8 GB"), (Decimal("0.5"), "0.5 GB"), (Decimal("7.999"), "8 GB"), (None, "—")],
)
def test_format_gb_is_decimal_gigabytes_as_todays_api_counts_them(gigabytes, text):
    assert format_gb(gigabytes) == text


@pytest.mark.parametrize(
    ("mib", "text"),
    [
        (Decimal(4096), "4 GiB"),
        (Decimal(25600), "25 GiB"),
        (Decimal(512), "512 MiB"),
        (Decimal(1536), "1.5 GiB"),
        (Decimal(2097152), "2 TiB"),
        (Decimal(1024), "1 GiB"),
        (Decimal(1023), "1023 MiB"),
        (Decimal(1500), "1.46 GiB"),
        (Decimal("0.5"), "0.5 MiB"),
        (Decimal(0), "0 MiB"),
        (Decimal(1024 * 1024 * 1024), "1024 TiB"),
        (4096, "4 GiB"),
        (None, "—"),
    ],
)
def test_format_mib(mib, text):
    assert format_mib(mib) == text


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("FR", "France"),
        ("fr", "France"),
        ("DE", "Germany"),
        ("NL", "Netherlands"),
        ("US", "United States"),
        ("GB", "United Kingdom"),
        ("CH", "Switzerland"),
        ("NO", "Norway"),
        ("SG", "Singapore"),
        ("AE", "United Arab Emirates"),
        ("KR", "South Korea"),
        ("XX", "XX"),
        ("", "—"),
        (None, "—"),
    ],
)
def test_country_name(code, name):
    assert country_name(code) == name


EU_EEA = [
    "AT",
    "BE",
    "BG",
    "HR",
    "CY",
    "CZ",
    "DK",
    "EE",
    "FI",
    "FR",
    "DE",
    "GR",
    "HU",
    "IE",
    "IT",
    "LV",
    "LT",
    "LU",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SK",
    "SI",
    "ES",
    "SE",
    "IS",
    "LI",
    "NO",
]
OTHERS = [
    "US",
    "CA",
    "GB",
    "CH",
    "JP",
    "SG",
    "IN",
    "AU",
    "BR",
    "ZA",
    "AE",
    "HK",
    "KR",
    "UA",
    "TR",
    "IL",
    "MX",
    "AR",
    "CL",
]


@pytest.mark.parametrize("code", EU_EEA + OTHERS)
def test_every_required_country_has_a_name(code):
    name = country_name(code)
    assert name != code
    assert name[0].isupper() and len(name) > 3


@pytest.mark.parametrize(
    ("city", "country", "name"),
    [
        ("PAR", "FR", "Paris"),
        ("FRA", "DE", "Frankfurt"),
        ("AMS", "NL", "Amsterdam"),
        ("LON", "GB", "London"),
        ("NYC", "US", "New York"),
        ("SJC", "US", "San Jose"),
        ("SIN", "SG", "Singapore"),
        ("TYO", "JP", "Tokyo"),
        ("WAW", "PL", "Warsaw"),
        ("KIV", "MD", "Chișinău"),
        ("BUH", "RO", "Bucharest"),
        ("SAO", "BR", "São Paulo"),
        ("BOM", "IN", "Mumbai"),
        ("DXB", "AE", "Dubai"),
        ("par", "fr", "Paris"),
        ("PAR", None, "Paris"),  # unambiguous without a country
        ("PAR", "US", "PAR"),  # Paris, Texas is not in the table: the code, not a wrong city
        ("ZZZ", "FR", "ZZZ"),
        (None, "FR", "—"),
        ("", "FR", "—"),
    ],
)
def test_city_name(city, country, name):
    assert city_name(city, country) == name


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (NOW + timedelta(hours=3, minutes=12), "in 3 h 12 min"),
        (NOW + timedelta(hours=3, minutes=12, seconds=59), "in 3 h 12 min"),
        (NOW + timedelta(hours=3), "in 3 h"),
        (NOW + timedelta(minutes=5), "in 5 min"),
        (NOW - timedelta(minutes=5), "5 min ago"),
        (NOW - timedelta(days=2), "2 d ago"),
        (NOW - timedelta(days=1, hours=5), "1 d 5 h ago"),
        (NOW - timedelta(days=30, hours=5), "30 d ago"),
        (NOW + timedelta(seconds=30), "just now"),
        (NOW - timedelta(seconds=59), "just now"),
        (NOW, "just now"),
        (None, "—"),
    ],
)
def test_format_relative(when, text):
    assert format_relative(when, NOW) == text


def test_format_relative_across_time_zones_and_naive_utc():
    paris = timezone(timedelta(hours=2))
    assert format_relative(datetime(2025, 4, 16, 18, 47, 55, tzinfo=paris), NOW) == "in 2 h"
    assert format_relative(datetime(2025, 4, 16, 13, 47, 55), NOW) == "1 h ago"


@pytest.mark.parametrize(
    ("created", "text"),
    [
        (NOW - timedelta(days=3, hours=5), "3 d"),
        (NOW - timedelta(hours=5, minutes=59), "5 h"),
        (NOW - timedelta(minutes=12), "12 min"),
        (NOW - timedelta(seconds=10), "< 1 min"),
        (NOW + timedelta(minutes=5), "< 1 min"),  # clock skew never shows a negative age
        (None, "—"),
    ],
)
def test_format_age(created, text):
    assert format_age(created, NOW) == text


def test_format_utc():
    assert format_utc(datetime(2025, 4, 16, 17, 59, 55, tzinfo=UTC)) == "2025-04-16 17:59:55 UTC"
    paris = timezone(timedelta(hours=2))
    assert format_utc(datetime(2025, 4, 16, 19, 59, 55, 999999, tzinfo=paris)) == "2025-04-16 17:59:55 UTC"
    assert format_utc(datetime(2025, 4, 16, 17, 59, 55)) == "2025-04-16 17:59:55 UTC"
    assert format_utc(None) == "—"
    assert format_utc("") == "—"


def _with_metadata(resource: Resource, metadata: dict) -> ResourceFacts:
    return ResourceFacts(resource, metadata, {})


@pytest.mark.parametrize(
    ("resource", "label"),
    [
        (Resource("VCPU", Decimal(2)), "2 vCPU"),
        (Resource("VCPU", Decimal(4), "vCPU"), "4 vCPU"),
        (Resource("RAM", Decimal(4096)), "4 GiB RAM"),
        (Resource("RAM", Decimal(4), "GiB"), "4 GiB RAM"),
        (Resource("RAM", Decimal(512)), "512 MiB RAM"),
        (Resource("STORAGE", Decimal(25600)), "25 GiB storage"),
        (_with_metadata(Resource("STORAGE", Decimal(25600)), {"type": "SSD"}), "25 GiB storage (SSD)"),
        (
            _with_metadata(Resource("STORAGE", Decimal("4096"), "MiB"), {"type": "NVMe"}),
            "4 GiB storage (NVMe)",
        ),
        (Resource("PUBLIC_IP", Decimal(1)), "1 public IPv4"),
        (_with_metadata(Resource("PUBLIC_IP", Decimal(1)), {"version": "4"}), "1 public IPv4"),
        (_with_metadata(Resource("PUBLIC_IP", Decimal(2)), {"version": 6}), "2 public IPv6"),
        (Resource("GPU", Decimal(1)), "1 GPU"),
        (Resource("GPU", Decimal(2), "units"), "2 units GPU"),
        (Resource("NETWORK_BANDWIDTH", Decimal(1000), "Mbps"), "1000 Mbps network bandwidth"),
        (Resource("FPGA_CARD", None), "FPGA CARD"),
        (Resource("RAM", None), "RAM"),
        (Resource("VCPU", Decimal("0.5")), "0.5 vCPU"),
    ],
)
def test_resource_label(resource, label):
    assert resource_label(resource) == label


def test_resource_label_of_a_non_resource():
    assert resource_label(None) == "—"


def test_template_filters_render():
    template = Template(
        "{% load vm_format %}"
        "{{ price|usdc }}|{{ ram|mib }}|{{ 'FR'|country_name }}|{% city_name 'PAR' 'FR' %}|"
        "{{ when|utc }}|{{ resource|resource_label }}|{{ created|age }}|{{ billing|relative }}|"
        "{{ missing|usdc }}|{{ missing|utc }}|{{ total|usdc_short }}"
    )
    now = datetime.now(UTC)
    html = template.render(
        Context(
            {
                "price": Decimal("0.298160"),
                "ram": Decimal(4096),
                "when": datetime(2025, 4, 16, 17, 59, 55, tzinfo=UTC),
                "resource": Resource("VCPU", Decimal(2)),
                "created": now - timedelta(days=3, minutes=1),
                "billing": now + timedelta(hours=3, minutes=12, seconds=30),
                "total": Decimal("17.846"),
            }
        )
    )
    assert html == ("0.298160|4 GiB|France|Paris|2025-04-16 17:59:55 UTC|2 vCPU|3 d|in 3 h 12 min|—|—|17.85")


def test_the_raw_object_filter_indents_and_the_template_escapes_it():
    html = Template("{% load vm_format %}{{ raw|pretty_json }}").render(
        Context({"raw": {"name": "<b>x</b>", "ok": True}})
    )
    assert html == "{\n  &quot;name&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;,\n  &quot;ok&quot;: true\n}"


# --- numbers no parser lets through, formatted anyway ------------------------------------------------------
# The parsers mark such numbers unreadable (vms.fluence.numbers); the helpers still never raise on one.


@pytest.mark.parametrize(
    ("helper", "value", "text"),
    [
        (format_usdc, Decimal("9" * 64), "—"),  # InvalidOperation from quantize before
        (format_usdc_short, Decimal("9" * 64), "—"),
        (format_money, Decimal("9" * 64), "—"),
        (format_exact, Decimal("9" * 64), "—"),
        (format_mib, Decimal("1" + "0" * 40), "—"),
        (format_gb, Decimal("1" + "0" * 40), "—"),
        (format_usdc, "1e999999", "—"),
        (format_exact, Decimal("1E+999999"), "—"),
        (format_money, Decimal("-1E+40"), "—"),
        # Just below what is shown: more digits than the default context's 28, rounded exactly.
        (format_money, Decimal("9" * 39), "999,999,999,999,999,999,999,999,999,999,999,999,999.00"),
        (format_usdc, Decimal("9" * 39) + Decimal("0.5"), "1" + "0" * 39 + ".000000"),
        (format_gb, Decimal("9" * 30 + ".125"), "9" * 30 + ".12 GB"),
        (format_mib, Decimal(2**20) * Decimal(10**30), "1" + "0" * 30 + " TiB"),
        (format_exact, Decimal("1E-50"), "1E-50"),  # too small to write out: keeps its exponent
        (format_exact, Decimal("1E-999999999"), "0"),
        (format_exact, Decimal("-0.000"), "0"),  # never a negative zero
        (format_usdc, Decimal("1E-999999999"), "0.000000"),
    ],
)
def test_numbers_beyond_any_plausible_one_are_text(helper, value, text):
    assert helper(value) == text


@pytest.mark.parametrize(
    ("resource", "label"),
    [
        (Resource("RAM", Decimal("1" + "0" * 40)), "RAM"),  # InvalidOperation before
        (Resource("VCPU", Decimal("1" + "0" * 40)), "VCPU"),
        (Resource("STORAGE", Decimal("1E+999999"), "GiB"), "GiB STORAGE"),  # Overflow in the MiB product
        (Resource("RAM", Decimal("sNaN"), "GiB"), "GiB RAM"),
        (Resource("RAM", Decimal("1E+39"), "TiB"), "— RAM"),
    ],
)
def test_resource_label_of_an_absurd_quantity_is_text(resource, label):
    assert resource_label(resource) == label


# --- the detail page's words for resources ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "name"),
    [
        ("VCPU", "vCPU"),
        ("RAM", "RAM"),
        ("STORAGE", "Storage"),
        ("PUBLIC_IP", "Public IP"),
        ("public_ip", "Public IP"),
        ("NETWORK_BANDWIDTH", "Network bandwidth"),
        ("GPU", "GPU"),
        ("FPGA_CARD", "FPGA card"),
        ("", "—"),
        (None, "—"),
    ],
)
def test_resource_types_read_as_people_name_them(type_, name):
    assert resource_name(type_) == name


def test_hardware_facts_are_named_in_words_and_a_speed_without_a_documented_unit_says_so():
    facts = hardware_facts(
        {"manufacturer": "Samsung", "speed": 3600, "sequentialWriteSpeed": 15000, "memoryGB": "80GB"}
    )
    assert [(fact.name, fact.value, fact.note) for fact in facts] == [
        ("Manufacturer", "Samsung", ""),
        ("Speed", "3600", "unit not stated by Fluence"),
        ("Sequential write speed", "15000", "unit not stated by Fluence"),
        ("Memory GB", "80GB", ""),
    ]
    assert hardware_facts(["not", "a", "mapping"]) == [] and hardware_facts(None) == []
