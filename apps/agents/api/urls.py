from django.urls import path

from . import views

urlpatterns = [
    path("agents", views.AgentListCreateApi.as_view(), name="agent-list"),
    path("agents/<int:pk>", views.AgentDetailApi.as_view(), name="agent-detail"),
    path("agents/<int:pk>/activity", views.AgentActivityListApi.as_view(), name="agent-activity"),
    path("agents/<int:pk>/tasks", views.AgentTaskListCreateApi.as_view(), name="agent-tasks"),
    path("agent-tasks/<int:pk>", views.AgentTaskDetailApi.as_view(), name="agent-task-detail"),
    path(
        "agent-tasks/<int:pk>/cancel", views.AgentTaskCancelApi.as_view(), name="agent-task-cancel"
    ),
]
