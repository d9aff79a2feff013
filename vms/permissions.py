"""Who may do what with a key: decided here, on the server, for every view.

The rule: a person sees the keys they own and the keys shared with one of their groups, and their role on
each is owner, operator or viewer. It is written as a queryset (`apikeys_visible_to`), for the pages that
build on it, and as one SQL statement (`keys_visible_to`) for the pages that refresh every few seconds;
tests/test_access.py holds both to the same answers. Every check asks the database afresh, so removing
someone from a group or unsharing a key takes effect on the very next request.
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast

from vms.models import KEY_ACTIONS, ApiKey, DeletionEvent, KeyShare

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


@cache
def _visible_sql(*, one_key: bool) -> str:
    """`apikeys_visible_to` in SQL, with the owner's username. Django takes about 1 ms to compile the
    queryset, more than the database takes to answer it; this text is built once per process."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    members = user_model.groups.through  # the user <-> group table, whatever the user model is called
    member_user = next(f.column for f in members._meta.fields if f.related_model is user_model)
    member_group = next(
        f.column for f in members._meta.fields if f.related_model is not user_model and f.is_relation
    )
    names = {
        "keys": quote(ApiKey._meta.db_table),
        "shares": quote(KeyShare._meta.db_table),
        "members": quote(members._meta.db_table),
        "m_user": quote(member_user),
        "m_group": quote(member_group),
        "users": quote(user_model._meta.db_table),
        "user_pk": quote(user_model._meta.pk.column),
        "username": quote(user_model._meta.get_field(user_model.USERNAME_FIELD).column),
    }
    # Only names from the models are formatted in; every value is a parameter.
    sql = """
        SELECT k.*, u.{username} AS owner_username,
            CASE WHEN k.owner_id = %(user)s THEN %(owner)s
                 WHEN EXISTS (
                     SELECT 1 FROM {shares} s JOIN {members} m ON m.{m_group} = s.group_id
                     WHERE s.api_key_id = k.id AND m.{m_user} = %(user)s AND s.role = %(operator)s
                 ) THEN %(operator)s
                 ELSE %(viewer)s END AS role_for_user
        FROM {keys} k JOIN {users} u ON u.{user_pk} = k.owner_id
        WHERE (k.owner_id = %(user)s OR k.id IN (
            SELECT s.api_key_id FROM {shares} s JOIN {members} m ON m.{m_group} = s.group_id
            WHERE m.{m_user} = %(user)s
        )){one_key}
        ORDER BY k.label, k.id"""
    return sql.format(**names, one_key=" AND k.id = %(key)s" if one_key else "")


def keys_visible_to(*, user, key_id: int | None = None) -> list[ApiKey]:
    """The answer of `apikeys_visible_to` (all keys, or the one with `key_id`), each also carrying
    `owner_username`: for the pages that refresh every few seconds."""
    if not user.is_authenticated or not user.is_active:
        return []
    params = {"user": user.pk, "key": key_id, "owner": OWNER, "operator": OPERATOR, "viewer": VIEWER}
    return list(ApiKey.objects.raw(_visible_sql(one_key=key_id is not None), params))


def role_on_key(*, user, api_key: ApiKey) -> str | None:
    """This person's role on this key, asked of the database now; None when they may not see it."""
    if api_key.pk is None:
        return None
    return apikeys_visible_to(user=user).filter(pk=api_key.pk).values_list("role_for_user", flat=True).first()


def role_may_delete(role: str | None) -> bool:
    return role in (OWNER, OPERATOR)


def role_rank(role: str | None) -> int:
    """How much a role allows, for choosing among a person's keys: owner 2, operator 1, viewer 0."""
    return {OWNER: 2, OPERATOR: 1}.get(role, 0)


def can_delete_vms(*, user, api_key: ApiKey) -> bool:
    """Deleting a key's VMs needs its owner, or a share with the operator role to one of their groups."""
    return role_may_delete(role_on_key(user=user, api_key=api_key))


def can_act_on_vms(*, user, api_key: ApiKey) -> bool:
    """Renaming, restarting a key's VMs or changing their ports: the same roles as deleting them (the owner,
    or an operator); a viewer only looks."""
    return can_delete_vms(user=user, api_key=api_key)


def can_manage_key(*, user, api_key: ApiKey) -> bool:
    """Renaming or removing a key: its owner only, whatever is shared."""
    return user.is_authenticated and user.is_active and api_key.owner_id == user.pk


def can_share_key(*, user, api_key: ApiKey) -> bool:
    """Sharing a key with groups: its owner, who must also hold the sharing permission (ops staff)."""
    return can_manage_key(user=user, api_key=api_key) and user.has_perm("vms.share_apikey")


def can_view_all_audit(*, user) -> bool:
    """The whole audit trail, every event (auditors, leads): `vms.view_all_audit`, or its first name
    `vms.view_all_deletions`, which still grants it. Everyone else reads the rows of the rule below."""
    return user.is_authenticated and (
        user.has_perm("vms.view_all_audit") or user.has_perm("vms.view_all_deletions")
    )


can_view_all_deletions = can_view_all_audit  # its first name


def audit_events_visible_to(*, user) -> QuerySet[DeletionEvent]:
    """The audit rows this person may read: every row with the audit permission; otherwise the rows of their
    own actions, the VM rows of the keys they may see (the same rule as for the VMs), and the key rows
    (added, renamed, shared…) of the keys they own: a viewer or operator of a shared key sees what is
    done to its VMs, not to whom its owner shares it."""
    if not user.is_authenticated:
        return DeletionEvent.objects.none()
    if can_view_all_audit(user=user):
        return DeletionEvent.objects.all()
    # Rows hold the key id as text; compare in the database so that this stays one query.
    visible_key_ids = (
        apikeys_visible_to(user=user).order_by().annotate(key_text=Cast("pk", CharField())).values("key_text")
    )
    owned_key_ids = (
        ApiKey.objects.filter(owner=user)
        .order_by()
        .annotate(key_text=Cast("pk", CharField()))
        .values("key_text")
    )
    key_actions = [str(action) for action in KEY_ACTIONS]
    return DeletionEvent.objects.filter(
        Q(actor_id=str(user.pk))
        | (Q(key_id__in=visible_key_ids) & ~Q(action__in=key_actions))
        | (Q(key_id__in=owned_key_ids) & Q(action__in=key_actions))
    )


deletion_events_visible_to = audit_events_visible_to  # its first name
