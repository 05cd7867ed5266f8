"""An MCP client for agent-sidecar's integration tests.

Uses the official MCP Python SDK's Streamable HTTP client (`mcp` 2.x: `Client`
over `streamable_http_client` with an explicit `httpx2.AsyncClient`):
initializes a session, lists the tools, optionally calls one tool, and prints
ONE JSON object on stdout:

    {"tools": [names], "protocol_version": "...",
     "call": {"ok": bool, "content": [...], "structured": ..., "is_error": bool,
              "error": {"code", "message", "data"} | null} | null}

A JSON-RPC error answering tools/call (a refusal) lands in call.error and
the exit code is still 0. Exit 2: the run timed out (--timeout); exit 1: any
other failure (connection refused, TLS, initialize or tools/list failing),
with a traceback on stderr.

TLS trust comes from SSL_CERT_FILE / SSL_CERT_DIR and proxies from
HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY (httpx2 with trust_env=True).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import traceback
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client


def header(value: str) -> tuple[str, str]:
    name, sep, val = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--header wants NAME=VALUE, got {value!r}")
    return name, val


def http_client(headers: dict[str, str], timeout: float) -> httpx2.AsyncClient:
    # Explicit trust: SSL_CERT_FILE alone (no system roots mixed in), as the
    # tests' CA is the only one that should vouch for the test servers.
    verify: ssl.SSLContext | bool = True
    if cafile := os.environ.get("SSL_CERT_FILE"):
        verify = ssl.create_default_context(cafile=cafile)
    return httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(timeout),
        verify=verify,
        trust_env=True,  # proxies from HTTPS_PROXY & co.
    )


def content_json(blocks: list[Any]) -> list[Any]:
    return [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in blocks]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    arguments = json.loads(args.args) if args.args is not None else {}
    async with http_client(dict(args.header), args.timeout) as hc:
        transport = streamable_http_client(args.url, http_client=hc)
        async with Client(
            transport,
            mode=args.mode,
            read_timeout_seconds=args.timeout,
            cache=None,
        ) as client:
            listed = await client.list_tools()
            out: dict[str, Any] = {
                "tools": [t.name for t in listed.tools],
                "protocol_version": client.protocol_version,
                "call": None,
            }
            if args.call is not None:
                try:
                    result = await client.call_tool(args.call, arguments)
                    out["call"] = {
                        "ok": not result.is_error,
                        "content": content_json(result.content),
                        "structured": result.structured_content,
                        "is_error": bool(result.is_error),
                        "error": None,
                    }
                except MCPError as e:
                    out["call"] = {
                        "ok": False,
                        "content": None,
                        "structured": None,
                        "is_error": False,
                        "error": {"code": e.code, "message": e.message, "data": e.data},
                    }
            # Print before the session is closed: closing needs the network,
            # which a quarantined agent no longer has. Closing then gets a
            # few seconds at most.
            print(json.dumps(out), flush=True)
            PRINTED.set()
            return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="e.g. https://crm.tools.test/mcp")
    p.add_argument("--call", help="tool to call after tools/list")
    p.add_argument("--args", help="the call's arguments, a JSON object")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds, for the whole run and each request")
    p.add_argument("--header", type=header, action="append", default=[], help="NAME=VALUE sent on every request")
    p.add_argument(
        "--mode",
        default="legacy",
        help="'legacy' (initialize handshake + Mcp-Session-Id, the default), "
        "'auto' (probe server/discover first) or a modern protocol version",
    )
    args = p.parse_args()
    try:
        anyio.run(_with_deadline, args)
    except TimeoutError:
        if PRINTED.is_set():
            print("mcp_client: closing the session timed out", file=sys.stderr)
            return
        print(f"mcp_client: timed out after {args.timeout} s", file=sys.stderr)
        sys.exit(2)
    except BaseException:  # noqa: BLE001 - any failure is reported with its traceback
        if PRINTED.is_set():
            print("mcp_client: closing the session failed", file=sys.stderr)
            return
        traceback.print_exc()
        sys.exit(1)


class _Flag:
    """Set once the result is printed."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


PRINTED = _Flag()
CLOSE_GRACE_SECONDS = 3.0


async def _with_deadline(args: argparse.Namespace) -> dict[str, Any]:
    with anyio.fail_after(args.timeout) as scope:
        async with anyio.create_task_group() as tg:

            async def shorten() -> None:
                while not PRINTED.is_set():
                    await anyio.sleep(0.05)
                scope.deadline = min(scope.deadline, anyio.current_time() + CLOSE_GRACE_SECONDS)

            tg.start_soon(shorten)
            out = await run(args)
            tg.cancel_scope.cancel()
        return out


if __name__ == "__main__":
    main()
