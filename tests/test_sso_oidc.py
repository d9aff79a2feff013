"""OpenID Connect: matched on sub, groups mapped, tokens checked; faked with `responses`, then for real."""

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import Group, User
from jwt.algorithms import RSAAlgorithm

from fluence_portal.sso.models import SsoIdentity
from tests.oidc.local_provider import ACCOUNT, dev_sign_in, local_provider

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com/realms/company"
CLIENT_ID = "fluence-portal"
CLIENT_SECRET = "client-secret-of-the-portal-at-the-company-idp"
ENDPOINTS = {
    "authorization_endpoint": f"{ISSUER}/auth",
    "token_endpoint": f"{ISSUER}/token",
    "userinfo_endpoint": f"{ISSUER}/userinfo",
    "jwks_uri": f"{ISSUER}/jwks",
}


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def oidc_settings(settings):
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = "Company IdP"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_OP_ISSUER = ISSUER
    settings.OIDC_TIMEOUT = 4.5
    settings.SSO_CREATE_USERS = True
    settings.SSO_GROUP_MAP = {"ops-team": "Operators", "auditors": "Auditors"}
    return settings


class FakeProvider:
    """The provider's HTTP side, faked with `responses` but with real RS256 signatures."""

    def __init__(self, mock, key):
        self.mock = mock
        self.key = key
        self.token_requests = []
        public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        mock.get(f"{ISSUER}/.well-known/openid-configuration", json={"issuer": ISSUER, **ENDPOINTS})
        mock.get(
            ENDPOINTS["jwks_uri"], json={"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]}
        )

    def sign_in(self, client, claims, *, id_token=None, userinfo=None, signing_key=None, algorithm="RS256"):
        """Start at the portal, 'authenticate' at the provider, come back to the callback."""
        start = client.get("/oidc/authenticate/?next=/")
        assert start.status_code == 302
        self.authorize_params = {k: v[0] for k, v in parse_qs(urlsplit(start["Location"]).query).items()}
        nonce = self.authorize_params["nonce"]
        token_claims = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": claims["sub"],
            "nonce": nonce,
            "iat": int(time.time()),
            "exp": int(time.time()) + 300,
            **(id_token or {}),
        }
        key = signing_key or self.key
        encoded = jwt.encode(token_claims, key, algorithm=algorithm, headers={"kid": "k1"})

        def token_endpoint(request):
            self.token_requests.append({k: v[0] for k, v in parse_qs(request.body).items()})
            return 200, {}, f'{{"access_token": "at-1", "token_type": "Bearer", "id_token": "{encoded}"}}'

        for method, url in (("POST", ENDPOINTS["token_endpoint"]), ("GET", ENDPOINTS["userinfo_endpoint"])):
            self.mock.remove(method, url)
        self.mock.add_callback("POST", ENDPOINTS["token_endpoint"], callback=token_endpoint)
        self.mock.get(ENDPOINTS["userinfo_endpoint"], json=userinfo or claims)
        return client.get("/oidc/callback/", {"code": "code-1", "state": self.authorize_params["state"]})


@pytest.fixture
def provider(oidc_settings, signing_key):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeProvider(mock, signing_key)


def signed_in_user(client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def jane(**extra):
    return {"sub": "sub-jane", "email": "jane@example.com", "preferred_username": "jane", **extra}


def test_first_sign_in_creates_the_user_matched_on_sub_with_mapped_groups(client, provider):
    response = provider.sign_in(client, jane(groups=["ops-team", "unmapped"]))

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = signed_in_user(client)
    assert user.username == "jane"
    assert user.email == "jane@example.com"
    assert set(user.groups.values_list("name", flat=True)) == {"Operators"}
    assert not (user.is_staff or user.is_superuser)
    assert SsoIdentity.objects.get(user=user).subject == "sub-jane"
    assert SsoIdentity.objects.get(user=user).issuer == ISSUER
    assert client.get("/").status_code == 200


def test_two_people_with_the_same_email_but_different_subs_stay_distinct(client, provider, django_user_model):
    provider.sign_in(client, jane())
    first = signed_in_user(client)
    client.logout()

    provider.sign_in(client, {"sub": "sub-other", "email": "jane@example.com", "preferred_username": "jane"})
    second = signed_in_user(client)

    assert first.pk != second.pk
    assert second.username.startswith("jane-")
    assert django_user_model.objects.filter(email="jane@example.com").count() == 2


def test_a_local_user_with_the_same_email_is_not_taken_over(client, provider, django_user_model):
    local = django_user_model.objects.create_user("admin", email="jane@example.com", password="x-password-1")

    provider.sign_in(client, jane())

    assert signed_in_user(client).pk != local.pk
    assert not SsoIdentity.objects.filter(user=local).exists()


def test_a_returning_user_is_found_by_sub_and_brought_up_to_date(client, provider):
    provider.sign_in(client, jane(groups=["ops-team"]))
    user = signed_in_user(client)
    user.groups.add(Group.objects.create(name="Hand-picked"))
    client.logout()

    provider.sign_in(
        client, jane(email="jane.doe@example.com", preferred_username="jdoe", groups=["auditors"])
    )

    again = signed_in_user(client)
    assert again.pk == user.pk
    assert again.email == "jane.doe@example.com"
    assert set(again.groups.values_list("name", flat=True)) == {"Auditors", "Hand-picked"}


def test_pkce_nonce_and_timeouts_on_every_provider_call(client, provider):
    provider.sign_in(client, jane())

    params = provider.authorize_params
    assert params["code_challenge_method"] == "S256"
    verifier = provider.token_requests[0]["code_verifier"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert params["code_challenge"] == expected
    assert params["nonce"]
    assert provider.token_requests[0]["client_id"] == CLIENT_ID
    assert {call.request.req_kwargs["timeout"] for call in provider.mock.calls} == {4.5}


@pytest.mark.parametrize(
    "id_token",
    [
        {"aud": "another-client"},
        {"aud": [CLIENT_ID, "another-client"], "azp": "another-client"},
        {"iss": "https://evil.example.com"},
        {"nonce": "replayed-nonce"},
        {"exp": int(time.time()) - 600},
    ],
    ids=["audience", "authorized-party", "issuer", "nonce", "expired"],
)
def test_an_id_token_that_does_not_check_out_signs_nobody_in(client, provider, id_token):
    response = provider.sign_in(client, jane(), id_token=id_token)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None
    assert not User.objects.exists()


def test_an_id_token_signed_with_another_key_is_refused(client, provider):
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    response = provider.sign_in(client, jane(), signing_key=forger)

    assert response["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None


def test_an_hs256_token_made_with_the_client_secret_is_refused(client, provider):
    response = provider.sign_in(client, jane(), signing_key=CLIENT_SECRET, algorithm="HS256")

    assert response["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None


def test_userinfo_about_another_subject_is_refused(client, provider):
    provider.sign_in(client, jane(), userinfo={"sub": "sub-mallory", "email": "m@example.com"})

    assert signed_in_user(client) is None
    assert not User.objects.exists()


def test_no_user_is_created_when_creation_is_off(client, provider, oidc_settings):
    oidc_settings.SSO_CREATE_USERS = False

    provider.sign_in(client, jane())

    assert signed_in_user(client) is None
    assert not User.objects.exists()


def test_an_unreachable_provider_sends_the_person_back_to_sign_in_with_a_message(client, oidc_settings):
    with responses.RequestsMock() as mock:
        mock.get(f"{ISSUER}/.well-known/openid-configuration", body=requests.ConnectionError("down"))
        response = client.get("/oidc/authenticate/", follow=True)

    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "Company IdP did not answer" in response.content.decode()


def test_password_sign_in_needs_no_provider(client, oidc_settings, user):
    # Break-glass: the provider is down (no endpoint answers), the password form still works.
    with responses.RequestsMock() as mock:
        response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
        assert not mock.calls

    assert response.status_code == 302
    assert signed_in_user(client).username == "alice"


def test_the_sign_in_page_offers_the_provider_when_enabled(client, oidc_settings):
    page = client.get("/accounts/login/?next=/%3Fq%3Dweb").content.decode()

    assert "Sign in with Company IdP" in page
    assert 'href="/oidc/authenticate/?next=/%3Fq%3Dweb"' in page
    assert 'name="password"' in page


def test_the_oidc_pages_do_not_exist_while_disabled(client, settings):
    settings.OIDC_ENABLED = False

    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()


def test_an_expired_id_token_sends_htmx_through_the_provider_as_a_whole_page(client, provider):
    provider.sign_in(client, jane())
    session = client.session
    session["oidc_id_token_expiration"] = time.time() - 1
    session.save()

    response = client.get(
        "/?partial=table", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?q=web"}
    )

    assert response.status_code == 200
    refresh = urlsplit(response["HX-Redirect"])
    assert f"{refresh.scheme}://{refresh.netloc}{refresh.path}" == ENDPOINTS["authorization_endpoint"]
    assert parse_qs(refresh.query)["prompt"] == ["none"]
    assert client.session["oidc_login_next"] == "/?q=web"


def test_an_expired_id_token_redirects_a_plain_page_through_the_provider(client, provider):
    provider.sign_in(client, jane())
    session = client.session
    session["oidc_id_token_expiration"] = time.time() - 1
    session.save()

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith(ENDPOINTS["authorization_endpoint"] + "?")


def test_a_refused_silent_refresh_ends_the_session(client, provider):
    provider.sign_in(client, jane())

    response = client.get("/oidc/callback/", {"error": "login_required", "state": "whatever"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None


# --- Against a real OpenID provider (oidc-provider on Node.js), through its development login pages ---


@pytest.fixture
def real_provider(settings):
    with local_provider(redirect_uris=["http://testserver/oidc/callback/"]) as running:
        running.configure(settings)
        yield running


def test_sign_in_through_a_real_local_provider(client, real_provider):
    start = client.get("/oidc/authenticate/?next=/")
    assert start["Location"].startswith(f"{real_provider.issuer}/auth?")

    callback = dev_sign_in(start["Location"], stop_at="http://testserver/oidc/callback/")
    response = client.get(callback.removeprefix("http://testserver"))

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = signed_in_user(client)
    assert user.email == ACCOUNT["email"]
    assert user.username == "jane"
    assert set(user.groups.values_list("name", flat=True)) == {"Operators"}
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (real_provider.issuer, ACCOUNT["sub"])
    assert client.get("/").status_code == 200
