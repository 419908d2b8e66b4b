from django.urls import path

from . import views

urlpatterns = [
    path("feature-status", views.FeatureStatusApi.as_view(), name="feature-status"),
    path("connection-stats", views.ConnectionStatsApi.as_view(), name="connection-stats"),
]
