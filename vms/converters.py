"""URL converters: a VM id is checked by the URL itself, so a malformed one never reaches Fluence."""

from vms.fluence.models import VM_ID_PATTERN


class VmIdConverter:
    regex = VM_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
