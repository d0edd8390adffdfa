"""A webhook receiver for the tests, checking every delivery with the Standard
Webhooks library from PyPI (`standardwebhooks`), which nobody here wrote.

Usage: webhook_receiver.py SECRET_FILE. Prints its port on the first line,
then one JSON line per delivery: {"id", "type", "verified", "error"}. Answers
204 to a delivery that verifies, 400 to one that does not. The secret is read
from SECRET_FILE at each request: the test writes it once the endpoint exists.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

SECRET_FILE = sys.argv[1]
# One line at a time: requests are handled on threads of their own.
PRINTING = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(SECRET_FILE, encoding="utf-8") as file:
            secret = file.read().strip()
        headers = {name: value for name, value in self.headers.items()}
        line = {"id": headers.get("webhook-id"), "type": None, "verified": False, "error": None}
        try:
            event = Webhook(secret).verify(body, headers)
            line["type"] = event["type"]
            line["verified"] = True
        except Exception as error:  # noqa: BLE001 - reported to the test
            line["error"] = f"{type(error).__name__}: {error}"
        with PRINTING:
            print(json.dumps(line), flush=True)
        self.send_response(204 if line["verified"] else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
