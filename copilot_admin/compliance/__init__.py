"""The auditor's room: the audit log's pages and API for tenant and platform auditors, filters,
entry detail and the streamed export. It reads what `audit/` recorded and changes nothing."""
