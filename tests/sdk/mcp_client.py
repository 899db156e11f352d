"""MCP client for Ward's SDK end-to-end tests, built on the real `mcp` 2.x `mcp.Client`.

    python tests/sdk/mcp_client.py --url http://127.0.0.1:15001/mcp \
        [--header ward-target:tools] [--mode auto|legacy|2026-07-28] SUBCOMMAND

Subcommands (each prints one JSON object on stdout):

    list                            {"tools": [sorted names]}
    call TOOL [--arg k=v ...]       {"ok": true, "content": "<text>"}
                                    {"ok": false, "code": <int>, "message": "<msg>"}  (JSON-RPC error)
                                    {"ok": false, "code": null, "is_error": true, "content": "<text>"}
                                        (a result with isError: true)
    bench [--tool echo] [--n N]     {"n": N, "seconds": total, "per_call_us": mean}

Every `--header K:V` is sent on every HTTP request the SDK makes (the
connect probe / initialize included), because it is set on the httpx2 client
handed to the SDK's streamable HTTP transport.

Exit status is 0 whenever a JSON object was printed, including JSON-RPC
errors; anything unexpected prints a traceback on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from contextlib import AsyncExitStack
from typing import Any

from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def parse_headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"mcp_client: bad --header {item!r}, want K:V")
        headers[name.strip()] = value.strip()
    return headers


def parse_args_kv(raw: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"mcp_client: bad --arg {item!r}, want k=v")
        out[key] = value
    return out


def result_text(result: Any) -> str:
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        if text is not None:
            parts.append(text)
    return "\n".join(parts)


async def open_client(stack: AsyncExitStack, args: argparse.Namespace) -> Client:
    http = await stack.enter_async_context(create_mcp_http_client(headers=parse_headers(args.header)))
    transport = streamable_http_client(args.url, http_client=http)
    return await stack.enter_async_context(
        Client(transport, mode=args.mode, read_timeout_seconds=args.timeout, cache=None)
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        client = await open_client(stack, args)
        if args.cmd == "list":
            listed = await client.list_tools()
            return {"tools": sorted(t.name for t in listed.tools)}
        if args.cmd == "call":
            try:
                result = await client.call_tool(args.tool, parse_args_kv(args.arg))
            except MCPError as e:
                return {"ok": False, "code": e.code, "message": e.message}
            if result.is_error:
                return {"ok": False, "code": None, "is_error": True, "content": result_text(result)}
            return {"ok": True, "content": result_text(result)}
        if args.cmd == "bench":
            arguments = parse_args_kv(args.arg) or {"text": "x"}
            await client.call_tool(args.tool, arguments)  # warm-up, not timed
            start = time.perf_counter()
            for _ in range(args.n):
                result = await client.call_tool(args.tool, arguments)
                if result.is_error:
                    raise RuntimeError(f"bench call failed: {result_text(result)}")
            seconds = time.perf_counter() - start
            return {"n": args.n, "seconds": seconds, "per_call_us": seconds / max(args.n, 1) * 1e6}
        raise AssertionError(args.cmd)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="streamable HTTP endpoint, e.g. http://127.0.0.1:15001/mcp")
    p.add_argument("--header", action="append", default=[], metavar="K:V", help="extra header on every request")
    p.add_argument(
        "--mode",
        default="auto",
        help="mcp.Client connect mode: auto (SDK default: probe server/discover, fall back to "
        "initialize), legacy (initialize handshake only), or 2026-07-28 (no handshake)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="read timeout per request, seconds")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    c = sub.add_parser("call")
    c.add_argument("tool")
    c.add_argument("--arg", action="append", default=[], metavar="k=v")
    b = sub.add_parser("bench")
    b.add_argument("--tool", default="echo")
    b.add_argument("--n", type=int, default=100)
    b.add_argument("--arg", action="append", default=[], metavar="k=v", help="default text=x")
    args = p.parse_args()
    try:
        out = asyncio.run(run(args))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
