-- Retention deletes usage records older than a cutoff across every organisation.
CREATE INDEX usage_records_time ON usage_records(created_at);
CREATE INDEX mcp_usage_records_time ON mcp_usage_records(created_at);
