"""A CRM-like MCP server for agent-sidecar's integration tests.

Built on the official MCP Python SDK (`mcp` 2.x: `MCPServer`, the successor of
1.x's FastMCP), served over Streamable HTTP with TLS by uvicorn at
`https://HOST:PORT/mcp`. Sessions are stateful (`Mcp-Session-Id`); responses
are SSE streams unless `--json-response` is given.

Every tool call appends one JSON line to the `--log` file:
{"tool", "arguments", "authorization", "traceparent"}, the last two being the
HTTP headers the server received (or null), so tests can see what a gateway
forwarded. Prints "ready https://HOST:PORT/mcp" on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

_LOCK = threading.Lock()


def build(log_path: str) -> MCPServer:
    server = MCPServer("crm-test", version="1.0.0", log_level="WARNING")

    def record(tool: str, fallback: dict[str, Any], ctx: Context) -> None:
        # The raw wire arguments (before the SDK validated and coerced them).
        params = ctx.request_context.params or {}
        arguments = params.get("arguments", fallback)
        headers = ctx.headers or {}
        line = json.dumps(
            {
                "tool": tool,
                "arguments": arguments,
                "authorization": headers.get("authorization"),
                "traceparent": headers.get("traceparent"),
            }
        )
        with _LOCK, open(log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    @server.tool()
    def get_customer(customer_id: str, ctx: Context) -> dict[str, Any]:
        """Returns one customer record."""
        record("get_customer", {"customer_id": customer_id}, ctx)
        return {"id": customer_id, "name": f"Customer {customer_id}", "status": "active"}

    @server.tool()
    def update_customers(customer_ids: list[str], status: str, ctx: Context) -> dict[str, Any]:
        """Sets the status of several customers."""
        record("update_customers", {"customer_ids": customer_ids, "status": status}, ctx)
        return {"updated": len(customer_ids), "status": status, "batch_id": f"b-{len(customer_ids)}"}

    @server.tool()
    def restore_customers(
        batch_id: str, customer_ids: list[str], status: str, ctx: Context
    ) -> dict[str, Any]:
        """Undoes an update_customers batch, setting the customers' status back."""
        record(
            "restore_customers",
            {"batch_id": batch_id, "customer_ids": customer_ids, "status": status},
            ctx,
        )
        return {"restored": len(customer_ids), "batch_id": batch_id, "status": status}

    @server.tool()
    def refund(amount: float, currency: str, customer_id: str, ctx: Context) -> dict[str, Any]:
        """Refunds an amount to a customer."""
        record("refund", {"amount": amount, "currency": currency, "customer_id": customer_id}, ctx)
        return {"refunded": amount, "currency": currency, "customer_id": customer_id}

    @server.tool()
    def export_customers(limit: int, ctx: Context) -> dict[str, Any]:
        """Exports up to `limit` customer records."""
        record("export_customers", {"limit": limit}, ctx)
        return {"customers": [{"id": f"c{i}"} for i in range(min(limit, 5))], "limit": limit}

    @server.tool()
    def delete_customer(customer_id: str, ctx: Context) -> dict[str, Any]:
        """Deletes a customer."""
        record("delete_customer", {"customer_id": customer_id}, ctx)
        return {"deleted": customer_id}

    return server


async def serve(args: argparse.Namespace) -> None:
    app = build(args.log).streamable_http_app(
        streamable_http_path="/mcp",
        json_response=args.json_response,
        stateless_http=False,
        # Tests reach the server by test names and addresses: no Host allowlist.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=args.host,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.02)
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"ready https://{host}:{args.port}/mcp", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True, help="PEM certificate chain")
    p.add_argument("--key", required=True, help="PEM private key")
    p.add_argument("--log", required=True, help="file that gets one JSON line per tool call")
    p.add_argument("--json-response", action="store_true", help="answer with JSON instead of SSE")
    args = p.parse_args()
    try:
        anyio.run(serve, args)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
