"""A real time-stamping authority for the tests: ``openssl ts -reply`` behind a small HTTP endpoint (RFC 3161
§3.4), with a TSA certificate of the test CA. It can be taken down, or made to replay its last reply."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.integration.tls_servers import OpenSslCA


class OpenSslTsa:
    def __init__(self, ca: OpenSslCA, name: str = "tsa") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="exnode-tsa-"))
        issued = ca.issue(name, san=f"DNS:{name}.example", usage="critical,timeStamping")
        (self.directory / "serial").write_text("01\n", encoding="ascii")
        self.config = self.directory / "tsa.cnf"
        self.config.write_text(
            "[ tsa ]\ndefault_tsa = tsa_config\n[ tsa_config ]\n"
            f"serial = {self.directory / 'serial'}\ncrypto_device = builtin\nsigner_cert = {issued.cert}\n"
            f"signer_key = {issued.key}\nsigner_digest = sha256\ndefault_policy = 1.2.156.10197.1.1\n"
            "digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = no\ntsa_name = no\n"
            "ess_cert_id_chain = no\ness_cert_id_alg = sha256\n", encoding="utf-8")
        self.down = False
        self.replay = False
        self.requests = 0
        self._last: bytes = b""
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if tsa.down:
                    self.send_error(503, "TSA down for the test")
                    return
                tsa.requests += 1
                reply = tsa._last if tsa.replay and tsa._last else tsa.reply(query)
                tsa._last = reply
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, query: bytes) -> bytes:
        with tempfile.TemporaryDirectory() as work:
            (Path(work) / "q.tsq").write_bytes(query)
            subprocess.run(["openssl", "ts", "-reply", "-config", str(self.config), "-queryfile",
                            str(Path(work) / "q.tsq"), "-out", str(Path(work) / "r.tsr")], check=True,
                           capture_output=True)
            return (Path(work) / "r.tsr").read_bytes()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
