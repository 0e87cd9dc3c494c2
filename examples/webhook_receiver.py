"""A tiny streamd webhook receiver that checks the signature and drops duplicates.

    STREAMD_SECRET=s3cret python examples/webhook_receiver.py 8080

Only the standard library. It answers 401 to a bad signature (streamd does not
retry a 4xx) and 200 to a duplicate (already handled: streamd may send a message
twice under at_least_once, and stops once it sees a 2xx).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["STREAMD_SECRET"].encode()
seen: set[str] = set()  # use a database with expiry in production


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers.get("X-Streamd-Signature", "")):
            self.send_response(401)
            self.end_headers()
            return
        data = json.loads(body)
        for msg in data if isinstance(data, list) else [data]:  # a list when batch_max > 1
            if msg["message_id"] in seen:
                continue
            seen.add(msg["message_id"])
            people = sum(d["class_name"] == "person" for d in msg["detections"])
            print(f"{msg['camera']} seq={msg['seq']} people={people}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
