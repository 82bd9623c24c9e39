"""Checks a password login must pass before any password is checked.

The login page and `POST auth/token/` call `password_login_check` first; rooms above the kernel
register their checks while the apps load (identity: single sign-on enforced for the e-mail's
domain answers 403 `sso_required`), so the login code needs to know none of them. A check
raises `ApplicationError` to refuse and returns to let the login go on. Refusing before the
password is checked means an enforced domain's password is never tried (nor counted against
the account by the lockout).
"""

from __future__ import annotations

from collections.abc import Callable

PasswordLoginCheck = Callable[..., None]

_CHECKS: list[PasswordLoginCheck] = []


def password_login_check_register(check: PasswordLoginCheck) -> None:
    """Add `check(*, email, request)` to the checks every password login passes (once)."""
    if check not in _CHECKS:
        _CHECKS.append(check)


def password_login_check(*, email: str, request=None) -> None:
    """Raise the first registered check's refusal (an `ApplicationError`) for `email`, if any."""
    for check in _CHECKS:
        check(email=(email or "").strip().lower(), request=request)
