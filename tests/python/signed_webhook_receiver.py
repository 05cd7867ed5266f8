"""A webhook receiver for the tests that verifies Standard Webhooks
signatures with the official library (PyPI standardwebhooks): each POST is
verified against the secret (`webhook-id`, `webhook-timestamp`,
`webhook-signature` over `id.timestamp.body`); a valid one is answered 204
and its JSON lines are recorded, an invalid one 401. One JSON line per
request goes to OUT: verified, the webhook-id, the record ids and the
error when it did not verify, the webhook-timestamp and the body's JSON
lines (`bodies`).

Usage: signed_webhook_receiver.py HOST:PORT OUT SECRET_FILE [CERT KEY]

With CERT and KEY (PEM files) it serves HTTPS. With FAIL_FIRST=N in the
environment, the first N requests are answered 503 unread (recorded with
`"status": 503`)."""

import http.server
import json
import os
import ssl
import sys
import threading

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
FAIL_FIRST = [int(os.environ.get("FAIL_FIRST", "0"))]
with open(sys.argv[3], encoding="utf-8") as f:
    HOOK = Webhook(f.read().strip())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        entry = {
            "webhook_id": self.headers.get("webhook-id"),
            "webhook_timestamp": self.headers.get("webhook-timestamp"),
            "content_type": self.headers.get("Content-Type"),
        }
        with LOCK:
            failing = FAIL_FIRST[0] > 0
            FAIL_FIRST[0] -= 1
        if failing:
            entry["status"] = 503
            with LOCK:
                with open(sys.argv[2], "a", encoding="utf-8") as out:
                    out.write(json.dumps(entry) + "\n")
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            HOOK.verify(body, dict(self.headers.items()), json_parse=False)
            entry["verified"] = True
            entry["bodies"] = [json.loads(line) for line in body.decode().splitlines()]
            entry["ids"] = [b["id"] for b in entry["bodies"]]
            status = 204
        except (WebhookVerificationError, ValueError, KeyError) as e:
            entry["verified"] = False
            entry["error"] = str(e)
            status = 401
        with LOCK:
            with open(sys.argv[2], "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


host, port = sys.argv[1].rsplit(":", 1)
server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
if len(sys.argv) > 5:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
