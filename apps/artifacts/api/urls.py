from django.urls import path

from . import views

urlpatterns = [
    path("artifacts", views.ArtifactListApi.as_view(), name="artifact-list"),
    path("artifacts/<int:pk>", views.ArtifactDetailApi.as_view(), name="artifact-detail"),
    path(
        "artifacts/<int:pk>/download",
        views.ArtifactDownloadApi.as_view(),
        name="artifact-download",
    ),
    path(
        "builds/<int:build_id>/artifacts.zip",
        views.BuildArtifactsArchiveApi.as_view(),
        name="build-artifacts-zip",
    ),
]
