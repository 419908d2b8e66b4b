import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.accounts.models import Role
from apps.accounts.services import user_set_role


class Command(BaseCommand):
    help = (
        "Create the first administrator if there is no superuser. The password comes from "
        "ORCHESTRA_ADMIN_PASSWORD, or is generated and printed once."
    )

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            return
        username = os.environ.get("ORCHESTRA_ADMIN_USERNAME", "admin")
        password = os.environ.get("ORCHESTRA_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user = users.create_superuser(username=username, email="", password=password)
        user_set_role(user=user, role=Role.ADMIN)
        given = "ORCHESTRA_ADMIN_PASSWORD" in os.environ
        shown = "the one in ORCHESTRA_ADMIN_PASSWORD" if given else password
        self.stdout.write(
            self.style.SUCCESS(f"Created administrator {username!r}, password: {shown}")
        )
        self.stdout.write("Change it with: python manage.py changepassword " + username)
