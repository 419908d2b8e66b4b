from django.urls import path

from . import views

urlpatterns = [
    path("chat", views.chat, name="streaming-chat"),
    path("generate", views.generate, name="streaming-generate"),
    path("active", views.active, name="streaming-active"),
    path("statistics", views.statistics, name="streaming-statistics"),
    path("<str:stream_id>", views.cancel, name="streaming-cancel"),
]
