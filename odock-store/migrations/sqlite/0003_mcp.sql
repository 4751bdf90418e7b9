-- MCP usage records carry their request id (filter by request, like usage records) and the error
-- code of refused or failed exchanges; lists filter by server and tool.
ALTER TABLE mcp_usage_records ADD COLUMN request_id TEXT;
ALTER TABLE mcp_usage_records ADD COLUMN error_code TEXT;
CREATE INDEX mcp_usage_records_server_time ON mcp_usage_records(mcp_server_id, created_at);
CREATE INDEX mcp_usage_records_request ON mcp_usage_records(request_id);

-- MCP auth configs and stdio environments are sealed envelopes; the API shows only these previews
-- (JSON objects: non-secret fields in clear, secrets previewed), so reads never decrypt.
ALTER TABLE mcp_servers ADD COLUMN auth_preview TEXT;
ALTER TABLE mcp_servers ADD COLUMN stdio_env_preview TEXT;
