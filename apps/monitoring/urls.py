from django.urls import path

from . import views

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("health/live", views.LivenessApi.as_view(), name="health-live"),
    path("health/ready", views.ReadinessApi.as_view(), name="health-ready"),
    path("health/detailed", views.HealthDetailedApi.as_view(), name="health-detailed"),
    path("metrics", views.metrics, name="prometheus-django-metrics"),
]
