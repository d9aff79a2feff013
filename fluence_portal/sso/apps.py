"""The single sign-on app."""

from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "fluence_portal.sso"
    label = "sso"
    verbose_name = "Single sign-on"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fluence_portal.sso import checks  # noqa: F401 (registers the system checks)
