"""Sent when an approval request is decided or expires, inside the transaction that records it.

Receivers (the builds app resumes or fails the step that waits) act in the same transaction, so a
decision and its effect are stored together or not at all. ``sender`` is ``ApprovalRequest``;
``approval`` is the decided request.
"""

from django.dispatch import Signal

approval_decided = Signal()
