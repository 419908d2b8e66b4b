from django.urls import path

from . import views

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("metrics", views.metrics, name="prometheus-django-metrics"),
]
