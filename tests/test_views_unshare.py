"""*Stop sharing* asks first: a page that names the key and the group, whose form alone stops the sharing."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from vms.models import KeyShare

pytestmark = pytest.mark.django_db


@pytest.fixture
def share(user, alice_key):
    user.user_permissions.add(Permission.objects.get(codename="share_apikey"))
    return KeyShare.objects.create(
        api_key=alice_key,
        group=Group.objects.create(name="Ops"),
        role="operator",
        created_by_username="alice",
    )


def unshare_url(share) -> str:
    return reverse("vms:key_unshare", args=[share.api_key.pk, share.pk])


def test_the_sharing_page_links_to_the_confirmation_and_posts_nothing_itself(alice_client, share):
    body = alice_client.get(reverse("vms:key_sharing", args=[share.api_key.pk])).content.decode()
    assert f'<a href="{unshare_url(share)}" role="button"' in body
    assert f'action="{unshare_url(share)}"' not in body


def test_the_confirmation_names_the_key_and_the_group_and_changes_nothing(alice_client, share):
    response = alice_client.get(unshare_url(share))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Stop sharing “Production” with Ops?" in body
    assert (
        "The key “Production” (…tion) is shared with the group <strong>Ops</strong> as operator by alice."
        in body
    )
    assert "can no longer delete them" in body  # an operator share says what it takes away
    assert 'name="confirm" value="stop-sharing"' in body and f'action="{unshare_url(share)}"' in body
    assert KeyShare.objects.filter(pk=share.pk).exists()


def test_a_post_without_the_confirmation_shows_it_again(alice_client, share):
    response = alice_client.post(unshare_url(share))
    assert response.status_code == 200 and "Stop sharing “Production”" in response.content.decode()
    assert KeyShare.objects.filter(pk=share.pk).exists()


def test_the_confirmed_post_stops_sharing(alice_client, share):
    response = alice_client.post(unshare_url(share), {"confirm": "stop-sharing"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("vms:key_sharing", args=[share.api_key.pk])
    assert "“Production” is no longer shared with Ops." in response.content.decode()
    assert not KeyShare.objects.filter(pk=share.pk).exists()


def test_nobody_else_reaches_the_confirmation(client, other_user, share):
    assert client.get(unshare_url(share)).status_code == 302  # anonymous: sign in
    client.force_login(other_user)
    assert client.get(unshare_url(share)).status_code == 404
    assert client.post(unshare_url(share), {"confirm": "stop-sharing"}).status_code == 404
    assert KeyShare.objects.filter(pk=share.pk).exists()


def test_the_owner_without_the_permission_gets_403(alice_client, user, share):
    user.user_permissions.clear()
    assert alice_client.get(unshare_url(share)).status_code == 403
    assert alice_client.post(unshare_url(share), {"confirm": "stop-sharing"}).status_code == 403
    assert KeyShare.objects.filter(pk=share.pk).exists()
