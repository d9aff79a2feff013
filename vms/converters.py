"""URL converters: a VM id is checked by the URL itself, so a malformed one never reaches Fluence."""


class VmIdConverter:
    # `0x` + 40 hex digits (baseline), or a UUID (generation B).
    regex = r"0x[0-9a-fA-F]{40}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
