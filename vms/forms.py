"""Forms: what a person types, checked before anything is stored or sent."""

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from vms import services
from vms.fluence.client import GENERATION_LABELS
from vms.models import KeyShare


class ApiKeyForm(forms.Form):
    label = forms.CharField(
        max_length=services.LABEL_MAX_LENGTH, help_text="A name you recognise, e.g. “Production”."
    )
    secret = forms.CharField(
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="From the Fluence console (Settings → API keys). It is tried once, then stored encrypted.",
        max_length=512,
        strip=True,
    )
    base_url = forms.ChoiceField(label="Fluence API", choices=())
    generation = forms.ChoiceField(
        label="API version",
        choices=[(services.AUTO, "Find it (recommended)")]
        + [(name, label[:1].upper() + label[1:]) for name, label in GENERATION_LABELS.items()],
        initial=services.AUTO,
        required=False,
        help_text="The portal asks Fluence which API answers the key. Choose one only if you must force it.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        urls = settings.FLUENCE_API_URLS
        self.fields["base_url"].choices = [(url, url) for url in urls]
        self.fields["base_url"].initial = urls[0] if urls else None

    def clean_label(self) -> str:
        return _field_clean(services.clean_label, self.cleaned_data["label"], "label")

    def clean_secret(self) -> str:
        return _field_clean(services.clean_secret, self.cleaned_data["secret"], "secret")

    def clean_generation(self) -> str:
        return self.cleaned_data["generation"] or services.AUTO


class ApiKeyRenameForm(forms.Form):
    label = forms.CharField(max_length=services.LABEL_MAX_LENGTH)

    def clean_label(self) -> str:
        return _field_clean(services.clean_label, self.cleaned_data["label"], "label")


def _field_clean(cleaner, value, field: str):
    try:
        return cleaner(value)
    except ValidationError as exc:
        raise ValidationError(exc.message_dict.get(field, exc.messages)) from None


class KeyShareForm(forms.Form):
    group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"),
        empty_label="Choose a group",
        help_text="Everyone in this group sees the key's VMs; the key itself is never shown to them.",
    )
    role = forms.ChoiceField(
        choices=KeyShare.Role.choices,
        initial=KeyShare.Role.VIEWER,
        help_text="Operators may also delete VMs. Sharing again with a group changes its role.",
    )
