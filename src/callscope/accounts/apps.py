from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "callscope.accounts"
    label = "accounts"
    verbose_name = _("Accounts and audit")

    def ready(self) -> None:
        from callscope.accounts import signals  # noqa: F401, PLC0415  (connects receivers)
