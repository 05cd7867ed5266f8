"""A webhook receiver for the tests: appends every POSTed JSON body, as one
line, to the file given on the command line, and answers 204."""

import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            event = json.loads(body)
        except ValueError:
            event = {"unparsable": body.decode("utf-8", "replace")}
        event["_path"] = self.path
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(json.dumps(event) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


host, port = sys.argv[1].rsplit(":", 1)
server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
print("ready", flush=True)
server.serve_forever()
