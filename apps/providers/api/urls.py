from django.urls import path

from . import views

urlpatterns = [
    path("providers", views.ProviderListCreateApi.as_view(), name="provider-list"),
    path("providers/<int:pk>", views.ProviderDetailApi.as_view(), name="provider-detail"),
    path("providers/<int:pk>/health", views.ProviderHealthApi.as_view(), name="provider-health"),
    path("providers/<int:pk>/test", views.ProviderTestApi.as_view(), name="provider-test"),
    path(
        "providers/<int:pk>/sync-models",
        views.ProviderSyncModelsApi.as_view(),
        name="provider-sync-models",
    ),
    path("models", views.ModelListCreateApi.as_view(), name="model-list"),
    path("models/<int:pk>", views.ModelDetailApi.as_view(), name="model-detail"),
    path("runtime-settings", views.RoutingSettingsApi.as_view(), name="runtime-settings"),
    path("circuit-breakers", views.CircuitBreakerListApi.as_view(), name="circuit-breakers"),
    path(
        "circuit-breakers/<slug:name>/reset",
        views.CircuitBreakerResetApi.as_view(),
        name="circuit-breaker-reset",
    ),
    path("llm-calls", views.LlmCallListApi.as_view(), name="llm-call-list"),
    path("llm-calls/<uuid:pk>", views.LlmCallDetailApi.as_view(), name="llm-call-detail"),
]
