-- The stdio launch (command, arguments, environment names) a SUPER_ADMIN configured, as a
-- fingerprint: a STDIO MCP server whose command is not on ODOCK_MCP_STDIO_ALLOW starts only while
-- its launch still matches what the operator approved. NULL: never approved (servers stored
-- before this migration included).
ALTER TABLE mcp_servers ADD COLUMN stdio_approval TEXT;
