"""Each person's VM table columns, kept in the database (UserPreferences): they follow the person to any
browser and survive signing out. One read, one write; names outside vms.vm_table's catalogue are dropped."""

from vms.models import UserPreferences
from vms.vm_table import DEFAULT_COLUMNS, chosen_columns


def vm_columns_for_user(*, user) -> tuple[str, ...]:
    """The optional columns this person shows: their choice, or the defaults until they make one."""
    stored = UserPreferences.objects.filter(user=user).values_list("vm_columns", flat=True).first()
    if stored is None:
        return DEFAULT_COLUMNS
    return chosen_columns(stored.split(","))


def vm_columns_set(*, user, columns) -> tuple[str, ...]:
    """Remember which optional columns this person shows (none is a choice too); what was kept."""
    kept = chosen_columns(columns)
    UserPreferences.objects.update_or_create(user=user, defaults={"vm_columns": ",".join(kept)})
    return kept
