"""Form plumbing every room's pages share: Bootstrap styling of widgets, and showing a
service's `ApplicationError` on the form (next to its field when it names one)."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect

from copilot_admin.core.errors import ApplicationError


class StyledFormMixin:
    """Gives widgets Bootstrap's classes, so templates render fields without per-field markup."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, (forms.CheckboxInput, forms.CheckboxSelectMultiple)):
                continue
            css = "form-select" if isinstance(widget, forms.Select) else "form-control"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields and "is-invalid" not in self.fields[name].widget.attrs.get("class", ""):
                widget = self.fields[name].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()
                # Screen readers announce the field as invalid and read its error (_form.html's id).
                widget.attrs["aria-invalid"] = "true"
                auto_id = self[name].auto_id
                if auto_id:
                    help_id = f"{auto_id}_helptext " if self.fields[name].help_text else ""
                    widget.attrs["aria-describedby"] = f"{help_id}{auto_id}_error"


def form_add_service_error(form: forms.Form, error: ApplicationError) -> None:
    """Show a service refusal on the form: on the fields it names, else as a form error."""
    placed = False
    for field in error.fields or {}:
        if field in form.fields:
            form.add_error(field, error.message)
            placed = True
    if not placed:
        form.add_error(None, error.message)


class ServiceFormMixin:
    """A FormView whose valid form is handed to a service by `perform(form)`.

    A service refusal (ApplicationError) is shown on the form and nothing is saved; on success
    the message `perform` returns is flashed and the browser goes to `get_success_url()`.
    """

    def perform(self, form) -> str:
        raise NotImplementedError

    def form_valid(self, form):
        try:
            message = self.perform(form)
        except ApplicationError as error:
            form_add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, message)
        return redirect(self.get_success_url())


def posted_id(value) -> int | None:
    """A primary key a page's form or query string sent (`"42"`), else None, so that a lookup
    finds nothing rather than failing: ASCII digits only (`"²"` is a digit to `str.isdigit`, not to
    `int`), within a bigint."""
    value = str(value or "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None
