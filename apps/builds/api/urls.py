from django.urls import path

from . import views

urlpatterns = [
    path("builds", views.BuildListCreateApi.as_view(), name="build-list"),
    path("builds/<int:pk>", views.BuildDetailApi.as_view(), name="build-detail"),
    path("builds/<int:pk>/events", views.BuildEventListApi.as_view(), name="build-events"),
    path("builds/<int:pk>/cancel", views.BuildCancelApi.as_view(), name="build-cancel"),
    path("builds/<int:pk>/retry", views.BuildRetryApi.as_view(), name="build-retry"),
    path("build-templates", views.TemplateListCreateApi.as_view(), name="build-template-list"),
    path(
        "build-templates/<int:pk>",
        views.TemplateDetailApi.as_view(),
        name="build-template-detail",
    ),
    path("build-templates/<int:pk>/run", views.TemplateRunApi.as_view(), name="build-template-run"),
]
