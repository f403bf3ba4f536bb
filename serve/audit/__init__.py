"""The audit log: policy, encrypted rows, the durable outbox, retention and usage reports.

See docs/audit.md. `AuditOutbox` is the `serve.record.RequestObserver` the gateway feeds;
`AuditStore` holds the rows; `serve.api.audit_routes` is the admin read API.
"""

from serve.audit.crypto import DecryptionFailed, PromptCipher, key_version
from serve.audit.outbox import AuditOutbox, OutboxStats
from serve.audit.policy import AuditPolicy, OutboxPolicy, PromptStorage, TeamAuditPolicy
from serve.audit.retention import Purgeable, RetentionTask
from serve.audit.row import AuditRow
from serve.audit.scope import AuditScope
from serve.audit.sink import AuditSink
from serve.audit.store import DEFAULT_TABLE, AuditPage, AuditStore, audit_table
from serve.audit.usage import InventoryRow, UsageRow, percentile

__all__ = [
    "DEFAULT_TABLE",
    "AuditOutbox",
    "AuditPage",
    "AuditPolicy",
    "AuditRow",
    "AuditScope",
    "AuditSink",
    "AuditStore",
    "DecryptionFailed",
    "InventoryRow",
    "OutboxPolicy",
    "OutboxStats",
    "PromptCipher",
    "PromptStorage",
    "Purgeable",
    "RetentionTask",
    "TeamAuditPolicy",
    "UsageRow",
    "audit_table",
    "key_version",
    "percentile",
]
