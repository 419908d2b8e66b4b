from django.urls import path

from . import views

urlpatterns = [
    path("approvals", views.ApprovalListApi.as_view(), name="approval-list"),
    path("approvals/pending", views.ApprovalPendingListApi.as_view(), name="approval-pending"),
    path("approvals/<int:pk>", views.ApprovalDetailApi.as_view(), name="approval-detail"),
    path("approvals/<int:pk>/decide", views.ApprovalDecideApi.as_view(), name="approval-decide"),
]
