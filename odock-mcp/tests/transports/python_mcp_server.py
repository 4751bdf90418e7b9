"""A real MCP server built with the official Python SDK (`pip install mcp`), for odock-mcp's
transport tests: `python3 python_mcp_server.py stdio|sse|streamable-http [port]`."""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("odock-python-sdk-server")


@server.tool()
def echo(text: str) -> str:
    """Echoes `text`."""
    return text


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Reports `steps` progress notifications, then answers."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps)
    return f"done after {steps} steps"


if __name__ == "__main__":
    transport = sys.argv[1]
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run(transport, host="127.0.0.1", port=int(sys.argv[2]))
