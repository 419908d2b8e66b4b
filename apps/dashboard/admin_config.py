"""Makes the dashboard's site the project's admin site (``admin.site``).

Listed in ``INSTALLED_APPS`` in place of ``django.contrib.admin``. It lives outside ``apps.py``
because an ``AdminConfig`` subclass there would be a second default configuration of the
dashboard app.
"""

from django.contrib.admin.apps import AdminConfig


class OrchestraAdminConfig(AdminConfig):
    default_site = "apps.dashboard.sites.OrchestraAdminSite"
