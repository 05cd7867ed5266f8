"""An OTLP/HTTP receiver for the tests, built on the official protobuf
definitions (PyPI opentelemetry-proto): decodes every POST to /v1/logs and
/v1/traces as ExportLogsServiceRequest / ExportTraceServiceRequest and
appends one JSON line per request to OUT: the path, the status it answered,
and for each log record its log.record.uid, seq and body, for each span its
name, ids and gen_ai attributes.

Usage: otlp_receiver.py HOST:PORT OUT [SCRIPT]

SCRIPT says how to answer the requests in turn, comma-separated:
`503x3` three times 503 with `Retry-After: 1`, `429x1`, `400x1`, `413x1`,
`partial2x1` one 200 whose partial success rejects 2 records; requests
after the script get 200. An undecodable body is answered 400."""

import http.server
import json
import sys
import threading

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

LOCK = threading.Lock()
SCRIPT = []


def parse_script(text):
    out = []
    for part in filter(None, (text or "").split(",")):
        what, _, count = part.partition("x")
        out.extend([what] * int(count or "1"))
    return out


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attrs(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        entry = {"path": self.path, "content_type": self.headers.get("Content-Type")}
        try:
            if self.path == "/v1/logs":
                req = logs_service_pb2.ExportLogsServiceRequest()
                req.ParseFromString(body)
                entry["logs"] = [
                    {
                        "uid": attrs(r.attributes).get("log.record.uid"),
                        "seq": attrs(r.attributes).get("agent_sidecar.audit.seq"),
                        "body": value(r.body),
                        "trace_id": r.trace_id.hex(),
                        "severity": r.severity_text,
                    }
                    for rl in req.resource_logs
                    for sl in rl.scope_logs
                    for r in sl.log_records
                ]
                entry["service"] = [
                    attrs(rl.resource.attributes).get("service.name") for rl in req.resource_logs
                ]
                response = logs_service_pb2.ExportLogsServiceResponse()
            elif self.path == "/v1/traces":
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                entry["spans"] = [
                    {
                        "name": s.name,
                        "kind": s.kind,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "status": s.status.code,
                        "attributes": attrs(s.attributes),
                    }
                    for rs in req.resource_spans
                    for ss in rs.scope_spans
                    for s in ss.spans
                ]
                response = trace_service_pb2.ExportTraceServiceResponse()
            else:
                self.answer(404, b"", entry)
                return
        except Exception as e:  # noqa: BLE001 - any decoding failure is a 400
            entry["error"] = str(e)
            self.answer(400, b"undecodable", entry)
            return
        with LOCK:
            step = SCRIPT.pop(0) if SCRIPT else "200"
        if step.startswith("partial"):
            rejected = int(step[len("partial"):])
            if self.path == "/v1/logs":
                response.partial_success.rejected_log_records = rejected
            else:
                response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = "rejected by the test receiver"
            self.answer(200, response.SerializeToString(), entry)
        elif step in ("503", "429", "502", "504"):
            self.answer(int(step), b"busy", entry, {"Retry-After": "1"})
        elif step in ("400", "413", "401", "500"):
            self.answer(int(step), b"no", entry)
        else:
            self.answer(200, response.SerializeToString(), entry)

    def answer(self, status, body, entry, headers=None):
        entry["status"] = status
        with LOCK:
            with open(sys.argv[2], "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


SCRIPT.extend(parse_script(sys.argv[3] if len(sys.argv) > 3 else ""))
host, port = sys.argv[1].rsplit(":", 1)
server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
print("ready", flush=True)
server.serve_forever()
