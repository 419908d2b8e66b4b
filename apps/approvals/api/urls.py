from django.urls import path

from . import views

urlpatterns = [
    path("approvals", views.ApprovalListApi.as_view(), name="approval-list"),
    path("approvals/request", views.ApprovalRequestApi.as_view(), name="approval-request"),
    path("approvals/pending", views.ApprovalPendingListApi.as_view(), name="approval-pending"),
    path("approvals/pending/<int:pk>/decide", views.ApprovalDecideApi.as_view(),
         name="approval-pending-decide"),
    path("approvals/stats", views.ApprovalStatsApi.as_view(), name="approval-stats"),
    path("approvals/policy", views.ApprovalPolicyApi.as_view(), name="approval-policy"),
    path("approvals/policy/history", views.ApprovalPolicyHistoryApi.as_view(),
         name="approval-policy-history"),
    path("approvals/<int:pk>", views.ApprovalDetailApi.as_view(), name="approval-detail"),
    path("approvals/<int:pk>/history", views.ApprovalHistoryApi.as_view(),
         name="approval-history"),
    path("approvals/<int:pk>/decide", views.ApprovalDecideApi.as_view(), name="approval-decide"),
]  # fmt: skip
