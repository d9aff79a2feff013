"""vms/forms.py: what a person types, checked before anything is stored or sent to Fluence.

The pages around the forms (a refused form saves nothing and calls nobody) are in tests/test_apikeys.py and
tests/test_access.py."""

import pytest
from django.contrib.auth.models import Group

from vms.forms import ApiKeyForm, ApiKeyRenameForm, KeyShareForm

SANDBOX_URL = "http://127.0.0.1:8099"
SECRET = "sbx_typed_into_the_form_01"


def _key_form(**overrides) -> ApiKeyForm:
    return ApiKeyForm(data={"label": "Production", "secret": SECRET, "base_url": SANDBOX_URL, **overrides})


@pytest.fixture(autouse=True)
def allowlist(settings):
    settings.FLUENCE_API_URLS = ["https://api.fluence.dev", SANDBOX_URL]


def test_a_good_key_form_gives_what_the_service_stores():
    form = _key_form(label="  Prod \t EU  ", secret=f"  {SECRET}\n")

    assert form.is_valid(), form.errors
    assert form.cleaned_data == {
        "label": "Prod EU",
        "secret": SECRET,
        "base_url": SANDBOX_URL,
        "generation": "auto",  # left blank: the portal finds the API that answers the key
    }


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        (
            {"secret": "has spaces in it"},
            {"secret": ["An API key is 8 to 512 printable characters without spaces. Paste it again."]},
        ),
        (
            {"secret": "short"},
            {"secret": ["An API key is 8 to 512 printable characters without spaces. Paste it again."]},
        ),
        ({"secret": "x" * 513}, {"secret": ["Ensure this value has at most 512 characters (it has 513)."]}),
        ({"label": "\t "}, {"label": ["This field is required."]}),
        ({"label": "x" * 81}, {"label": ["Ensure this value has at most 80 characters (it has 81)."]}),
        (
            {"base_url": "http://169.254.169.254"},
            {
                "base_url": [
                    "Select a valid choice. http://169.254.169.254 is not one of the available choices."
                ]
            },
        ),
        (
            {"generation": "z"},
            {"generation": ["Select a valid choice. z is not one of the available choices."]},
        ),
    ],
)
def test_each_mistake_is_one_plain_sentence_on_its_own_field(overrides, errors):
    form = _key_form(**overrides)

    assert not form.is_valid()
    assert form.errors == errors


def test_the_addresses_offered_are_the_allowlist_at_the_time_the_form_is_made(settings):
    settings.FLUENCE_API_URLS = ["https://eu.fluence.example", "https://us.fluence.example"]
    form = ApiKeyForm()

    assert form.fields["base_url"].choices == [
        ("https://eu.fluence.example", "https://eu.fluence.example"),
        ("https://us.fluence.example", "https://us.fluence.example"),
    ]
    assert form.fields["base_url"].initial == "https://eu.fluence.example"
    assert not _key_form(base_url=SANDBOX_URL).is_valid()  # no longer allowed


def test_with_no_address_allowed_no_key_can_be_added(settings):
    settings.FLUENCE_API_URLS = []

    assert ApiKeyForm().fields["base_url"].initial is None
    assert not _key_form().is_valid()


def test_a_typed_key_is_never_written_back_into_the_page():
    form = _key_form(label="")  # refused: the form is shown again

    assert not form.is_valid()
    html = str(form["secret"])
    assert 'type="password"' in html and 'autocomplete="off"' in html
    assert SECRET not in html and "value=" not in html


@pytest.mark.parametrize(
    ("label", "cleaned", "error"),
    [
        (" Prod   EU ", "Prod EU", None),
        ("", None, "This field is required."),
        ("y" * 81, None, "Ensure this value has at most 80 characters (it has 81)."),
    ],
)
def test_a_new_label_is_checked_as_on_the_add_form(label, cleaned, error):
    form = ApiKeyRenameForm(data={"label": label})

    assert form.is_valid() is (error is None)
    assert form.cleaned_data.get("label") == cleaned
    assert form.errors.get("label") == (None if error is None else [error])


@pytest.mark.django_db
def test_sharing_offers_the_groups_by_name_and_viewer_first():
    for name in ("watchers", "auditors", "operators"):
        Group.objects.create(name=name)
    form = KeyShareForm()

    assert [label for _, label in form.fields["group"].choices] == [
        "Choose a group",
        "auditors",
        "operators",
        "watchers",
    ]
    assert form.fields["role"].initial == "viewer"
    assert [value for value, _ in form.fields["role"].choices] == ["viewer", "operator"]


@pytest.mark.django_db
def test_sharing_needs_a_known_group_and_role():
    group = Group.objects.create(name="watchers")

    assert KeyShareForm(data={"group": group.pk, "role": "operator"}).is_valid()
    form = KeyShareForm(data={"group": group.pk + 1, "role": "owner"})
    assert not form.is_valid()
    assert set(form.errors) == {"group", "role"}
