from django.utils.translation import gettext_lazy as _
from unfold.forms import AuthenticationForm  # type: ignore[import-untyped]


class LoginForm(AuthenticationForm):
    """Unfold's login form, whose refusal names what this site wants: an account with a role
    (Django's says "a staff account", which is how a role lets a person in)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "Please enter the correct username and password of an account with a role "
            "(viewer, operator or admin). Both fields may be case-sensitive."
        ),
    }
