from django.urls import path

from . import views

urlpatterns = [path("query", views.QueryApi.as_view(), name="query")]
