"""A2A upstream agent for Ward's SDK end-to-end tests, built on the real `a2a-sdk` 1.x.

Serves, on 127.0.0.1:<port>:
    GET  /.well-known/agent-card.json   the agent card (skills `summarize`, `wire_funds`)
    POST /                              A2A 1.0 JSON-RPC (`SendMessage`, `SendStreamingMessage`, ...)

The executor answers every message with one agent text message
"<skill>: <input text>", where <skill> is the incoming message's metadata key
`skill` (falling back to the request's metadata, then `summarize`).

The card's single JSONRPC interface URL is `--public-url`
(default `http://127.0.0.1:<port>/`). Prints `ready` on stdout once listening.

    python tests/sdk/a2a_server.py --port 15102 [--public-url http://127.0.0.1:15001/]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from a2a.helpers.proto_helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, DEFAULT_RPC_URL, PROTOCOL_VERSION_1_0
from google.protobuf import json_format
from starlette.applications import Starlette

DEFAULT_SKILL = "summarize"


class SkillEchoExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        skill = None
        if context.message is not None:
            skill = json_format.MessageToDict(context.message.metadata).get("skill")
        if skill is None:
            skill = context.metadata.get("skill")
        text = context.get_user_input()
        await event_queue.enqueue_event(
            new_text_message(
                f"{skill or DEFAULT_SKILL}: {text}",
                context_id=context.context_id,
            )
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError("cancel is not supported")


def build_card(public_url: str) -> AgentCard:
    return AgentCard(
        name="ward-sdk-test-a2a",
        description="A2A agent for Ward's SDK end-to-end tests",
        version="0.0.1",
        supported_interfaces=[
            AgentInterface(url=public_url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_1_0)
        ],
        capabilities=AgentCapabilities(streaming=False, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="summarize",
                name="Summarize",
                description="Summarize a text",
                tags=["text"],
            ),
            AgentSkill(
                id="wire_funds",
                name="Wire funds",
                description="Move money between accounts",
                tags=["finance"],
            ),
        ],
    )


def build_app(public_url: str, v03_compat: bool) -> Starlette:
    card = build_card(public_url)
    handler = DefaultRequestHandler(
        agent_executor=SkillEchoExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    routes = [
        *create_agent_card_routes(card, card_url=AGENT_CARD_WELL_KNOWN_PATH),
        *create_jsonrpc_routes(handler, rpc_url=DEFAULT_RPC_URL, enable_v0_3_compat=v03_compat),
    ]
    return Starlette(routes=routes)


async def serve(args: argparse.Namespace) -> None:
    public_url = args.public_url or f"http://{args.host}:{args.port}/"
    app = build_app(public_url, args.v03_compat)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            sys.exit("a2a_server: uvicorn exited before listening")
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await serving


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--public-url", default=None, help="URL put in the card (default http://HOST:PORT/)")
    p.add_argument("--v03-compat", action="store_true", help="also accept A2A 0.3 method names (message/send, ...)")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = p.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
