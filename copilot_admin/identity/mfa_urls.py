"""MFA pages: the second step of a login and the user's own factors."""

from django.urls import path

from copilot_admin.identity import mfa_views as views

app_name = "mfa"

urlpatterns = [
    path("login/mfa/", views.MfaLoginVerifyView.as_view(), name="login_verify"),
    path("login/mfa/security-key/options/", views.MfaLoginSecurityKeyOptionsView.as_view(), name="login_key_options"),
    path("login/mfa/security-key/verify/", views.MfaLoginSecurityKeyVerifyView.as_view(), name="login_key_verify"),
    path("account/mfa/", views.MfaManageView.as_view(), name="manage"),
    path("account/mfa/reauth/", views.MfaReauthView.as_view(), name="reauth"),
    path("account/mfa/totp/", views.MfaTotpEnrolView.as_view(), name="totp_enrol"),
    path("account/mfa/security-key/options/", views.MfaSecurityKeyOptionsView.as_view(), name="key_options"),
    path("account/mfa/security-key/", views.MfaSecurityKeyRegisterView.as_view(), name="key_register"),
    path("account/mfa/remove/", views.MfaFactorRemoveView.as_view(), name="remove"),
    path("account/mfa/recovery-codes/", views.MfaRecoveryCodesView.as_view(), name="recovery_codes"),
]
