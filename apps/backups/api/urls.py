from django.urls import path

from . import views

urlpatterns = [
    path("backups", views.BackupListCreateApi.as_view(), name="backup-list"),
    path("backups/<int:pk>", views.BackupDetailApi.as_view(), name="backup-detail"),
]
