from django.urls import path

from . import views

urlpatterns = [
    path("platform-settings", views.PlatformSettingsApi.as_view(), name="platform-settings"),
]
