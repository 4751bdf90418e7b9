"""Drives an MCP server through the Odock gateway with the official MCP Python SDK (`pip install
mcp`) over streamable HTTP, authenticated with the virtual key: initialize, tools/list, tools/call
and a tool that reports progress. Prints one JSON line of results.

usage: mcp_sdk.py <gateway MCP URL> <virtual key> <tool> <tool arguments JSON>
                  <progress tool> <progress tool arguments JSON>
"""
import asyncio
import json
import sys

from mcp import ClientSession

url, key = sys.argv[1], sys.argv[2]
tool, tool_args = sys.argv[3], json.loads(sys.argv[4])
progress_tool, progress_args = sys.argv[5], json.loads(sys.argv[6])
headers = {"Authorization": f"Bearer {key}"}


def connect():
    """The streamable HTTP client of whichever SDK generation is installed."""
    try:  # SDK 2.x: headers go on the HTTP client.
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        return streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    except ImportError:  # SDK 1.x
        from mcp.client.streamable_http import streamablehttp_client

        return streamablehttp_client(url, headers=headers)


def attr(obj, *names):
    """The first attribute that exists (SDK 2.x is snake_case, 1.x camelCase)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AttributeError(names[0])


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def main():
    progress = []

    async def on_progress(value, total=None, message=None):
        progress.append(value)

    async with connect() as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            called = await session.call_tool(tool, tool_args)
            slow = await session.call_tool(
                progress_tool, progress_args, progress_callback=on_progress
            )
    print(
        json.dumps(
            {
                "server": attr(init, "server_info", "serverInfo").name,
                "tools": sorted(t.name for t in tools.tools),
                "call": text_of(called),
                "callIsError": bool(attr(called, "is_error", "isError")),
                "progressEvents": len(progress),
                "progressIsError": bool(attr(slow, "is_error", "isError")),
            }
        )
    )


asyncio.run(main())
