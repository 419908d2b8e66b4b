from django.urls import path

from . import views

urlpatterns = [
    path("feature-status", views.FeatureStatusApi.as_view(), name="feature-status"),
]
