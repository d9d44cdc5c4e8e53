"""Log-in, log-out, password change, and (namespace ``accounts``) the governance pages:
administration, lockouts, sessions, policy, audit trail, evidence workflow, TOTP."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from callscope.accounts import auditviews, evidenceviews, staffviews, views

governance = [
    path("totp/", views.totp_setup, name="totp_setup"),
    path("install/manager/", views.install_manager, name="install_manager"),
    path("operators/", staffviews.operators, name="operators"),
    path("operators/new/", staffviews.operator_new, name="operator_new"),
    path("operators/<int:user_id>/", staffviews.operator_detail, name="operator"),
    path(
        "operators/<int:user_id>/designation/",
        staffviews.operator_designation,
        name="operator_designation",
    ),
    path(
        "operators/<int:user_id>/training/",
        staffviews.operator_training,
        name="operator_training",
    ),
    path("operators/<int:user_id>/rights/", staffviews.operator_rights, name="operator_rights"),
    path("operators/<int:user_id>/totp/", staffviews.operator_totp, name="operator_totp"),
    path(
        "operators/<int:user_id>/totp/reset/",
        staffviews.operator_totp_reset,
        name="operator_totp_reset",
    ),
    path("operators/<int:user_id>/active/", staffviews.operator_active, name="operator_active"),
    path(
        "operators/<int:user_id>/password/",
        staffviews.operator_password,
        name="operator_password",
    ),
    path(
        "operators/<int:user_id>/sessions/end/",
        staffviews.operator_sessions_end,
        name="operator_sessions_end",
    ),
    path("lockouts/", staffviews.lockouts, name="lockouts"),
    path("lockouts/<int:attempt_id>/lift/", staffviews.lockout_lift, name="lockout_lift"),
    path("sessions/", staffviews.active_sessions, name="sessions"),
    path("sessions/<int:session_id>/end/", staffviews.session_end, name="session_end"),
    path("policy/", staffviews.policy, name="policy"),
    path("audit/", auditviews.audit_trail, name="audit"),
    path("audit/export.csv", auditviews.audit_export, name="audit_export"),
    path("evidence/", evidenceviews.evidence_list, name="evidence_list"),
    path("evidence/new/<int:call_id>/", evidenceviews.evidence_new, name="evidence_new"),
    path("evidence/<int:evidence_id>/", evidenceviews.evidence_detail, name="evidence"),
    path(
        "evidence/<int:evidence_id>/approve/",
        evidenceviews.evidence_approve,
        name="evidence_approve",
    ),
    path(
        "evidence/<int:evidence_id>/reject/", evidenceviews.evidence_reject, name="evidence_reject"
    ),
    path(
        "evidence/<int:evidence_id>/export/", evidenceviews.evidence_export, name="evidence_export"
    ),
    path(
        "evidence/<int:evidence_id>/handover/",
        evidenceviews.evidence_handover,
        name="evidence_handover",
    ),
    path(
        "evidence/<int:evidence_id>/release/",
        evidenceviews.evidence_release,
        name="evidence_release",
    ),
]

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/verify/", views.login_totp, name="login_totp"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("", include((governance, "accounts"))),
]
