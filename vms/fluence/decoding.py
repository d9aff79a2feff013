"""Fluence's VM lists decoded at the speed of the decoder (msgspec), with the tolerant parsers behind it.

A list answer is decoded in one pass, in C, straight into the model's classes (models.VmBaseline, VmA, VmB):
the types of their fields say what each field may hold, and the hook below reads the few values that need
the portal's own rules (money, timestamps, quantities, statuses) with the very functions the tolerant
parsers use. A list with anything else in it (a field in an odd form, a value out of bounds, an item that is
no VM) is read again by models.parse_vm_list_lenient, field by field, which keeps every VM it can and names
what it could not read. Both give equal VMs for a well-formed list (tests/test_fluence_decoding.py holds
them to that), so the fast path changes how long a read takes, never what it says.

Each VM keeps its own JSON as a msgspec Raw (a view of the answer's bytes, not a copy): `Vm.raw` decodes it
when a page asks for everything Fluence sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Raw, Struct
from msgspec.structs import force_setattr

from . import models
from .models import (
    Amount,
    EpochPrice,
    Gigabytes,
    Status,
    Vm,
    VmA,
    VmB,
    VmBaseline,
)


def _status(value: object) -> Status:
    if type(value) is not str:
        raise TypeError("a status is text")
    return models.status_of(value)


# The classes the hook builds, each with the tolerant parsers' own reading of the value. ValueError and
# TypeError (OutOfRange is a ValueError) make the decoder give up on the list, which then goes the long way.
# Prices and quantities repeat from VM to VM (a plan's price, 32768 MiB of RAM): their readings are kept,
# keyed by the value and its JSON type (the values are immutable, so one instance serves every VM).
_REPEATING = lru_cache(maxsize=8192, typed=True)
_READERS: dict[type, Callable[[object], object]] = {
    Status: _status,
    EpochPrice: _REPEATING(
        lambda value: EpochPrice(models.parse_money(value, micro_if_integer=type(value) is not str))
    ),
    Amount: _REPEATING(lambda value: Amount(models.parse_money(value, micro_if_integer=False))),
    Gigabytes: _REPEATING(lambda value: Gigabytes(models.parse_gigabytes(value))),
}


def _hook(kind: type, value: object) -> object:
    try:
        read = _READERS[kind]
    except KeyError:
        raise NotImplementedError(kind) from None
    return read(value)


_LISTS = {
    generation: msgspec.json.Decoder(list[cls], dec_hook=_hook)
    for generation, cls in (("baseline", VmBaseline), ("a", VmA), ("b", VmB))
}


def read_vm_list(body: bytes, generation: str) -> tuple[list[Vm], list[str]]:
    """The VMs of a plain list answer (the 2025 APIs), and why each item that is no VM was left out (as
    models.parse_vm_list_lenient). ValueError when the body is not JSON, BadResponse when it is no list
    of VMs."""
    with models.cyclic_gc_paused():  # as the tolerant parser does, for the same reason
        try:
            vms = _LISTS[generation].decode(body)
        except msgspec.DecodeError:  # a ValidationError too: the list is not all in the documented form
            return models.parse_vm_list_lenient(json.loads(body), copy=False, generation=generation)
        answer = models.ListJson(body)
        for index, vm in enumerate(vms):
            force_setattr(vm, "_source", (answer, index))
    return vms, []


# --- today's API: the pages of a list, as the cache keeps them ---------------------------------------------


_COUNT = Annotated[int, Meta(ge=0)]


class _Pagination(Struct, frozen=True):
    currentPage: _COUNT
    perPage: _COUNT
    totalPages: _COUNT


class _Page(Struct, frozen=True):
    items: list[VmB]
    pagination: _Pagination


class _RawPage(Struct, frozen=True):
    items: list[Raw]


class _Stored(Struct, frozen=True):
    pages: list[_Page]
    locations: dict | None = None  # cluster id -> datacenter object (models.parse_locations)
    balance: Any = None  # the balances answer as Fluence sent it
    notes: list[str] = msgspec.field(default_factory=list)


class _StoredRaw(Struct, frozen=True):
    pages: list[_RawPage]


_STORED = msgspec.json.Decoder(_Stored, dec_hook=_hook)
_STORED_RAW = msgspec.json.Decoder(_StoredRaw)


def read_b_pages(body: bytes) -> tuple[list[Vm], list[str], object] | None:
    """The VMs of today's API's stored pages (`{"pages": [...], "locations": …, "balance": …, "notes": …}`),
    each once, up to the first empty page; the notes (with one on duplicates) and the balances answer. None
    when anything in them is not in the documented form: the caller then reads them the long way."""
    with models.cyclic_gc_paused():
        try:
            stored = _STORED.decode(body)
        except msgspec.DecodeError:
            return None
        raw_pages = _STORED_RAW.decode(body).pages
        locations = models.datacenters_of(stored.locations or {})
        vms: list[Vm] = []
        seen: set[str] = set()
        duplicates = 0
        for page, raw_page in zip(stored.pages, raw_pages, strict=True):
            if not page.items:
                break
            for vm, raw in zip(page.items, raw_page.items, strict=True):
                key = vm.id.lower()
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                finish_b(vm, raw, locations)
                vms.append(vm)
    notes = [*stored.notes, *[models.duplicates_note(duplicates)] * bool(duplicates)]
    return vms, notes, stored.balance


def finish_b(vm: VmB, raw: Raw, locations: Mapping) -> None:
    """What a decoded VM of today's API takes from elsewhere than its own fields: its public address and
    boot disk size (from `expanded`), its datacenter (from the account's clusters), and its JSON."""
    expanded = vm.expanded_sent
    if expanded is not None:
        if expanded.publicIp is not None:
            force_setattr(vm, "public_ip", expanded.publicIp.address)
        if expanded.bootDisk is not None:
            force_setattr(vm, "storage_gb", expanded.bootDisk.volumeGb)
        force_setattr(vm, "expanded_sent", None)
    if vm.cluster_id:
        force_setattr(vm, "datacenter", locations.get(vm.cluster_id))
    force_setattr(vm, "_source", raw)
