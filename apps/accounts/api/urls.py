from django.urls import path

from . import views

urlpatterns = [
    path("me", views.MeApi.as_view(), name="me"),
    path("api-keys", views.ApiKeyListCreateApi.as_view(), name="api-key-list"),
    path("api-keys/<int:pk>", views.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("api-keys/<int:pk>/revoke", views.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
    path("users", views.UserListApi.as_view(), name="user-list"),
    path("users/<int:pk>/role", views.UserRoleApi.as_view(), name="user-role"),
    path("workspaces", views.WorkspaceListCreateApi.as_view(), name="workspace-list"),
    path("workspaces/<int:pk>", views.WorkspaceDetailApi.as_view(), name="workspace-detail"),
    path("budgets", views.BudgetListCreateApi.as_view(), name="budget-list"),
    path("budgets/<int:pk>", views.BudgetDetailApi.as_view(), name="budget-detail"),
]
