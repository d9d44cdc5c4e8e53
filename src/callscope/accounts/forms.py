"""Forms of the accounts pages (labels are English msgids, Japanese in the catalogue)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from callscope.accounts.access import client_address
from callscope.accounts.audittrail import ACTIONS
from callscope.accounts.models import Role, User
from callscope.store import audit

NOT_DESIGNATED = _(
    "Only operators designated by the manager with a recorded training may use this system. "
    "Please contact the manager."
)


class LoginForm(AuthenticationForm):
    """Django's log-in form, refusing operators without designation or training."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if user.is_eligible or user.role == Role.INSTALLER:
            return
        audit.record(
            "login_refused",
            actor=user,
            address=client_address(self.request) if self.request else "",
            target=f"user:{user.get_username()}",
            detail={
                "designated": user.is_designated,
                "trained": user.trained_on is not None,
            },
        )
        raise ValidationError(NOT_DESIGNATED, code="not_designated")


class TotpForm(forms.Form):
    code = forms.CharField(
        label=_("Six-digit code"),
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class OperatorForm(forms.Form):
    username = forms.CharField(label=_("User name"), max_length=150)
    display_name = forms.CharField(label=_("Name"), max_length=150, required=False)

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"]).strip()
        if User.objects.filter(username=username).exists():
            raise ValidationError(_("This user name is already taken."))
        return username


class ManagerForm(forms.Form):
    username = forms.CharField(label=_("User name"), max_length=150)


class TrainingForm(forms.Form):
    trained_on = forms.DateField(
        label=_("Training date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


class RightsForm(forms.Form):
    can_listen = forms.BooleanField(label=_("May listen to audio"), required=False)
    can_see_numbers = forms.BooleanField(label=_("May see full phone numbers"), required=False)


class FlagForm(forms.Form):
    """One yes/no switch (designation, account enabled, second factor required)."""

    value = forms.BooleanField(required=False)


class PolicyForm(forms.Form):
    totp_required_for_all = forms.BooleanField(
        label=_("Require the second factor for everyone"), required=False
    )


class EvidenceRequestForm(forms.Form):
    case_reference = forms.CharField(label=_("Case reference"), max_length=100)
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 4}))


class DecisionForm(forms.Form):
    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class HandoverForm(forms.Form):
    recipient = forms.CharField(label=_("Recipient"), max_length=200)
    handed_over_on = forms.DateField(
        label=_("Date"), widget=forms.DateInput(attrs={"type": "date"})
    )
    medium = forms.CharField(label=_("Medium"), max_length=200)
    handed_over_by = forms.CharField(label=_("Handed over by"), max_length=150)


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.CharField(label=_("User"), max_length=150, required=False)
    target = forms.CharField(label=_("Target"), max_length=255, required=False)
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        action = self.fields["action"]
        assert isinstance(action, forms.ChoiceField)
        action.choices = [("", _("All")), *ACTIONS.items()]
