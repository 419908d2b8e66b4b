from django.urls import path

from . import views

urlpatterns = [
    path("feature-status", views.FeatureStatusApi.as_view(), name="feature-status"),
    path("connection-stats", views.ConnectionStatsApi.as_view(), name="connection-stats"),
    path("monitoring/health", views.MonitoringHealthApi.as_view(), name="monitoring-health"),
    path(
        "monitoring/health/<str:check_name>",
        views.MonitoringCheckApi.as_view(),
        name="monitoring-health-check",
    ),
    path("monitoring/system", views.MonitoringSystemApi.as_view(), name="monitoring-system"),
]
