from django.urls import path

from . import views

urlpatterns = [
    path("experiments", views.ExperimentListCreateApi.as_view(), name="experiment-list"),
    path(
        "experiments/stats/summary",
        views.ExperimentSummaryApi.as_view(),
        name="experiment-summary",
    ),
    path("experiments/health", views.ExperimentHealthApi.as_view(), name="experiment-health"),
    path(
        "experiments/settings",
        views.ExperimentSettingsApi.as_view(),
        name="experiment-settings",
    ),
    path("experiments/canaries", views.CanaryListCreateApi.as_view(), name="canary-list"),
    path("experiments/canaries/<int:pk>", views.CanaryDetailApi.as_view(), name="canary-detail"),
    path(
        "experiments/canaries/<int:pk>/advance",
        views.CanaryAdvanceApi.as_view(),
        name="canary-advance",
    ),
    path(
        "experiments/canaries/<int:pk>/rollback",
        views.CanaryRollbackApi.as_view(),
        name="canary-rollback",
    ),
    path("experiments/<int:pk>", views.ExperimentDetailApi.as_view(), name="experiment-detail"),
    path("experiments/<int:pk>/start", views.ExperimentStartApi.as_view(), name="experiment-start"),
    path("experiments/<int:pk>/stop", views.ExperimentStopApi.as_view(), name="experiment-stop"),
    path(
        "experiments/<int:pk>/variant/<str:user_id>",
        views.ExperimentVariantApi.as_view(),
        name="experiment-variant",
    ),
    path(
        "experiments/<int:pk>/track/conversion",
        views.ConversionTrackApi.as_view(),
        name="experiment-conversion",
    ),
    path(
        "experiments/<int:pk>/track/feedback",
        views.FeedbackTrackApi.as_view(),
        name="experiment-feedback",
    ),
    path("experiments/<int:pk>/stats", views.ExperimentStatsApi.as_view(), name="experiment-stats"),
]
