#!/usr/bin/env bash
# Create (idempotently) the Python venv used by the SDK end-to-end tests
# (tests/sdk/*.py): the real MCP SDK (mcp 2.x) and A2A SDK (a2a-sdk 1.x)
# from PyPI, at exact pinned versions (including every transitive dependency).
#
#   scripts/sdk-venv.sh            # progress on stderr; venv python path last on stdout
#   WARD_SDK_VENV=/some/dir scripts/sdk-venv.sh
#
# A marker file in the venv records the pins it was built with; a second run
# with the same pins does nothing. Change a pin and the venv is updated.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WARD_SDK_VENV:-$repo/target/sdk-venv}"
marker="$venv/.ward-sdk-pins"

# Top level: mcp (MCPServer, mcp.Client), a2a-sdk with its Starlette server
# extra, uvicorn to serve both. The rest is the resolved closure, pinned so
# every machine gets the same versions.
pins="$(cat <<'PINS'
mcp==2.3.0
a2a-sdk[http-server]==1.3.0
uvicorn==0.54.0
aiologic==0.17.1
annotated-types==0.8.0
anyio==4.16.0
attrs==26.1.0
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
cryptography==50.0.2
culsans==0.11.0
google-api-core==2.44.0
google-auth==2.62.2
googleapis-common-protos==1.76.0
h11==0.16.0
httpcore==1.0.9
httpcore2==2.16.2
httpx==0.28.1
httpx2==2.16.2
idna==3.20
json-rpc==1.15.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
mcp-types==2.3.0
opentelemetry-api==1.45.2
packaging==26.3
proto-plus==1.29.0
protobuf==7.36.2
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.3
pydantic_core==2.50.4
PyJWT==2.15.1
python-multipart==0.0.34
referencing==0.37.0
requests==2.34.2
rpds-py==2026.9.1
sniffio==1.3.1
sse-starlette==3.7.0
starlette==1.10.0
truststore==0.10.5
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
wrapt==2.5.2
PINS
)"

py="$venv/bin/python"
if [[ -x "$py" && -f "$marker" && "$(cat "$marker")" == "$pins" ]]; then
    echo "sdk-venv: up to date at $venv" >&2
    echo "$py"
    exit 0
fi

base="$(command -v python3.11 || command -v python3 || true)"
if [[ -z "$base" ]]; then
    echo "sdk-venv: no python3 found" >&2
    exit 1
fi
if ! "$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "sdk-venv: $base is older than 3.10; mcp 2.x needs 3.10+" >&2
    exit 1
fi

if [[ ! -x "$py" ]]; then
    echo "sdk-venv: creating venv at $venv with $base ($("$base" --version 2>&1))" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$base" -m venv "$venv"
fi
rm -f "$marker"

req="$(mktemp)"
trap 'rm -f "$req"' EXIT
printf '%s\n' "$pins" > "$req"
echo "sdk-venv: installing pinned mcp / a2a-sdk / uvicorn and their dependencies" >&2
"$py" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2

# Fail loudly if an import the tests rely on is missing.
"$py" - >&2 <<'PY'
from importlib.metadata import version

import uvicorn  # noqa: F401
from a2a.client import A2ACardResolver  # noqa: F401
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes  # noqa: F401
from mcp import Client  # noqa: F401
from mcp.server.mcpserver import MCPServer  # noqa: F401

print("sdk-venv: mcp", version("mcp"), "| a2a-sdk", version("a2a-sdk"), "| uvicorn", version("uvicorn"))
PY

printf '%s' "$pins" > "$marker"
echo "sdk-venv: ready at $venv" >&2
echo "$py"
