from django.urls import path

from . import views

urlpatterns = [path("events", views.EventApi.as_view(), name="events")]
