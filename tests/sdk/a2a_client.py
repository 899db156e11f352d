"""A2A client for Ward's SDK end-to-end tests, built on the real `a2a-sdk` 1.x.

    python tests/sdk/a2a_client.py --url http://127.0.0.1:15001/ \
        [--header ward-target:agent] SUBCOMMAND

Subcommands (each prints one JSON object on stdout):

    card                          {"skills": [sorted skill ids]}
    send --skill S --text T       {"ok": true, "text": "<reply text>"}
         [--no-card]              {"ok": false, "code": <int|null>, "message": "<msg>"}

`card` fetches `<url>/.well-known/agent-card.json` with the SDK's
`A2ACardResolver`. `send` also fetches the card first, as an SDK client
normally would (`--no-card` skips that and uses a synthesized card), then
sends one non-streaming `SendMessage` JSON-RPC request with
`metadata={"skill": S}` on the message.

The request always goes to `--url`, never to the interface URL in the card:
the client is assembled from the SDK's `JsonRpcTransport(http, card, url)` and
`BaseClient` instead of `ClientFactory.create`, which would pick the card's
URL. Every `--header K:V` (and the SDK's `A2A-Version: 1.0`) is a default
header of the one httpx client used for the card fetch and the RPC.

Exit status is 0 whenever a JSON object was printed, including JSON-RPC and
HTTP errors from the agent (or a proxy); unexpected failures print a
traceback on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import traceback
import uuid
from typing import Any

import httpx
from a2a.client import A2ACardResolver, A2AClientError, BaseClient, ClientConfig, minimal_agent_card
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.helpers.proto_helpers import get_message_text
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageConfiguration, SendMessageRequest
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER, TransportProtocol
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, A2AError

_GENERIC_RPC_ERROR = re.compile(r"^JSON-RPC Error (-?\d+): (.*)$", re.S)


def parse_headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"a2a_client: bad --header {item!r}, want K:V")
        headers[name.strip()] = value.strip()
    return headers


def error_json(e: A2AError) -> dict[str, Any] | None:
    """The JSON-RPC code and message behind an SDK error, or None if it is not one."""
    # A code the SDK knows (-32001..-32009, -326xx, -32700) comes back as its own class.
    for cls, code in JSON_RPC_ERROR_CODE_MAP.items():
        if type(e) is cls:
            return {"ok": False, "code": code, "message": e.message}
    if isinstance(e, A2AClientError):
        # Any other code: A2AClientError("JSON-RPC Error <code>: <message>").
        m = _GENERIC_RPC_ERROR.match(str(e))
        if m:
            return {"ok": False, "code": int(m.group(1)), "message": m.group(2)}
        # A non-2xx HTTP answer: raise_for_status fired before the body was
        # read as JSON-RPC. Surface a JSON-RPC error body if there is one.
        cause = e.__cause__
        if isinstance(cause, httpx.HTTPStatusError):
            try:
                body = cause.response.json()
            except ValueError:
                body = None
            err = body.get("error") if isinstance(body, dict) else None
            if isinstance(err, dict):
                return {
                    "ok": False,
                    "code": err.get("code"),
                    "message": err.get("message"),
                    "http_status": cause.response.status_code,
                }
            return {
                "ok": False,
                "code": None,
                "message": str(e),
                "http_status": cause.response.status_code,
            }
    return None


def reply_text(resp: Any) -> str:
    if resp.HasField("message"):
        return get_message_text(resp.message)
    if resp.HasField("task"):
        task = resp.task
        parts = [get_message_text(a) for a in task.artifacts]
        if task.status.HasField("message"):
            parts.append(get_message_text(task.status.message))
        return "\n".join(p for p in parts if p)
    raise A2AClientError(f"unexpected response: {resp}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    headers = {VERSION_HEADER: PROTOCOL_VERSION_CURRENT, **parse_headers(args.header)}
    async with httpx.AsyncClient(headers=headers, timeout=args.timeout) as http:
        try:
            if args.cmd == "card" or not args.no_card:
                card = await A2ACardResolver(http, args.url).get_agent_card()
            else:
                card = minimal_agent_card(args.url, [TransportProtocol.JSONRPC])
            if args.cmd == "card":
                return {"skills": sorted(s.id for s in card.skills)}

            config = ClientConfig(streaming=False, httpx_client=http)
            transport = JsonRpcTransport(http, card, args.url, is_shared_httpx=True)
            client = BaseClient(card, config, transport, [])
            request = SendMessageRequest(
                message=Message(
                    message_id=str(uuid.uuid4()),
                    role=Role.ROLE_USER,
                    parts=[Part(text=args.text)],
                    metadata={"skill": args.skill},
                ),
                configuration=SendMessageConfiguration(accepted_output_modes=["text/plain"]),
            )
            texts = [reply_text(resp) async for resp in client.send_message(request)]
            return {"ok": True, "text": "\n".join(texts)}
        except A2AError as e:
            out = error_json(e)
            if out is None:
                raise
            return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="agent base URL, e.g. http://127.0.0.1:15001/")
    p.add_argument("--header", action="append", default=[], metavar="K:V", help="extra header on every request")
    p.add_argument("--timeout", type=float, default=30.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("card")
    s = sub.add_parser("send")
    s.add_argument("--skill", default="summarize")
    s.add_argument("--text", required=True)
    s.add_argument("--no-card", action="store_true", help="do not fetch the card before sending")
    args = p.parse_args()
    if args.cmd == "card":
        args.no_card = False
    try:
        out = asyncio.run(run(args))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
