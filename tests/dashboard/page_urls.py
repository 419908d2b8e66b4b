"""The admin site's URLs built anew, after a test registered a page (``test_pages.py``)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
