"""Who may do what with a key: decided here, on the server, for every view.

The rule is written once, as a queryset (`apikeys_visible_to`): a person sees the keys they own and the
keys shared with one of their groups, and their role on each is owner, operator or viewer. Every check
below asks the database afresh, so removing someone from a group or unsharing a key takes effect on the
very next request.
"""

from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Value, When

from vms.models import ApiKey, KeyShare

OWNER = "owner"
OPERATOR = KeyShare.Role.OPERATOR.value
VIEWER = KeyShare.Role.VIEWER.value
ROLE_LABELS = {OWNER: "Owner", OPERATOR: "Operator", VIEWER: "Viewer"}


def apikeys_visible_to(*, user) -> QuerySet[ApiKey]:
    """The keys this person may see, each annotated with `role_for_user` (owner, operator or viewer).

    One query, no duplicates: shares are matched through a subquery, not a join, so a key shared with
    two of the person's groups is still one row, and the best of the roles wins.
    """
    if not user.is_authenticated or not user.is_active:
        return ApiKey.objects.none()
    shares = KeyShare.objects.filter(group__user=user)
    operator_share = shares.filter(api_key=OuterRef("pk"), role=OPERATOR)
    return ApiKey.objects.filter(Q(owner=user) | Q(pk__in=shares.values("api_key_id"))).annotate(
        role_for_user=Case(
            When(owner=user, then=Value(OWNER)),
            When(Exists(operator_share), then=Value(OPERATOR)),
            default=Value(VIEWER),
            output_field=CharField(),
        )
    )


def role_on_key(*, user, api_key: ApiKey) -> str | None:
    """This person's role on this key, asked of the database now; None when they may not see it."""
    if api_key.pk is None:
        return None
    return apikeys_visible_to(user=user).filter(pk=api_key.pk).values_list("role_for_user", flat=True).first()


def role_may_delete(role: str | None) -> bool:
    return role in (OWNER, OPERATOR)


def can_delete_vms(*, user, api_key: ApiKey) -> bool:
    """Deleting a key's VMs needs its owner, or a share with the operator role to one of their groups."""
    return role_may_delete(role_on_key(user=user, api_key=api_key))


def can_manage_key(*, user, api_key: ApiKey) -> bool:
    """Renaming or removing a key: its owner only, whatever is shared."""
    return user.is_authenticated and user.is_active and api_key.owner_id == user.pk


def can_share_key(*, user, api_key: ApiKey) -> bool:
    """Sharing a key with groups: its owner, who must also hold the sharing permission (ops staff)."""
    return can_manage_key(user=user, api_key=api_key) and user.has_perm("vms.share_apikey")


def can_view_all_deletions(*, user) -> bool:
    """The whole audit trail (auditors, leads); everyone else reads the rows of the keys they can see."""
    return user.is_authenticated and user.has_perm("vms.view_all_deletions")
