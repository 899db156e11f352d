"""MCP upstream for Ward's SDK end-to-end tests.

A real `mcp` 2.x `MCPServer` served over streamable HTTP at
`http://127.0.0.1:<port>/mcp` (the SDK's default path). Tools:

    search(query)         -> "results for <query>"
    delete_records(table) -> "deleted <table>"
    echo(text)            -> "<text>"

Prints `ready` on stdout (flushed) once the socket is listening.

    python tests/sdk/mcp_server.py --port 15101 [--json-response] [--stateless]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

MCP_PATH = "/mcp"


def build_server() -> MCPServer:
    server = MCPServer(name="ward-sdk-test-mcp", version="0.0.1", log_level="WARNING")

    @server.tool()
    def search(query: str) -> str:
        """Search the records."""
        return f"results for {query}"

    @server.tool()
    def delete_records(table: str) -> str:
        """Delete every record of a table."""
        return f"deleted {table}"

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    return server


def security_settings(host: str, port: int, extra_hosts: list[str]) -> TransportSecuritySettings:
    # The SDK turns DNS-rebinding protection on by itself for a loopback bind,
    # allowing Host "127.0.0.1:*" / "localhost:*" / "[::1]:*". Say it
    # explicitly so the allowed set does not depend on SDK defaults: Ward
    # forwards with Host "127.0.0.1:<port>", which must pass.
    hosts = [f"{host}:{port}", "127.0.0.1:*", "localhost:*", "[::1]:*", *extra_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


async def serve(args: argparse.Namespace) -> None:
    app = build_server().streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=args.json_response,
        stateless_http=args.stateless,
        transport_security=security_settings(args.host, args.port, args.allow_host),
        host=args.host,
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # raises if startup failed
            sys.exit("mcp_server: uvicorn exited before listening")
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await serving


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--json-response",
        action="store_true",
        help="answer POSTs with application/json instead of the default text/event-stream",
    )
    p.add_argument("--stateless", action="store_true", help="stateless streamable HTTP (no mcp-session-id)")
    p.add_argument("--allow-host", action="append", default=[], help="extra allowed Host header value")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = p.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
