#!/usr/bin/env python3
"""A local RFC 3161 time-stamping authority for tests: `openssl ts -reply` behind HTTP on 127.0.0.1.

Usage: tsa.py WORKDIR [--until-stdin-closes]

Makes a throwaway PKI in WORKDIR (ca.pem; tsa.pem with the critical timeStamping extended key usage;
other.pem without it), binds a free port on 127.0.0.1, prints `PORT` on stdout, and answers POSTed
TimeStampReqs. The path picks the answer, so tests can check that bad tokens are refused:

  /             a correct token from `openssl ts -reply`
  /other-data   a token for other data (imprint of 32 random bytes)
  /wrong-nonce  a token for the right data but with a nonce of its own
  /not-a-tsa    the correct TSTInfo, signed by other.pem (no timeStamping usage)
  /rejected     a TimeStampResp with status rejection and no token

With --until-stdin-closes it exits when its standard input closes (its parent died or let go), and
removes WORKDIR.
"""

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

TSA_CONFIG = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {work}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1
digests = sha1, sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True).stdout


def make_pki(work):
    if os.path.exists(os.path.join(work, "tsa.pem")):
        return
    join = lambda name: os.path.join(work, name)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join("ca.key"), "-out", join("ca.pem"),
            "-days", "2", "-subj", "/CN=confine test TSA root",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    for name, usage in [("tsa", "critical,timeStamping"), ("other", "codeSigning")]:
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(name + ".key"),
                "-out", join(name + ".pem"), "-days", "2", "-subj", "/CN=confine test " + name,
                "-CA", join("ca.pem"), "-CAkey", join("ca.key"),
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature",
                "-addext", "extendedKeyUsage=" + usage)
    with open(join("serial"), "w") as f:
        f.write("01\n")
    with open(join("tsa.cnf"), "w") as f:
        f.write(TSA_CONFIG.format(work=work))


def der(tag, contents):
    n = len(contents)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + contents


def der_read(data):
    """(tag, contents, rest) of the first element."""
    tag, first = data[0], data[1]
    if first < 0x80:
        start, n = 2, first
    else:
        count = first & 0x7F
        start, n = 2 + count, int.from_bytes(data[2:2 + count], "big")
    return tag, data[start:start + n], data[start + n:]


def request_digest(query):
    """The imprint of a TimeStampReq: SEQ { version, SEQ { algorithm, OCTET STRING digest }, ... }."""
    _, fields, _ = der_read(query)
    _, _, rest = der_read(fields)
    _, imprint, _ = der_read(rest)
    _, _, after_alg = der_read(imprint)
    _, digest, _ = der_read(after_alg)
    return digest


class Handler(http.server.BaseHTTPRequestHandler):
    work = ""

    def log_message(self, *args):
        pass

    def do_POST(self):
        query = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            body = self.answer(query)
        except subprocess.CalledProcessError as e:
            self.send_error(500, e.stderr.decode(errors="replace")[:200])
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply(self, query):
        with tempfile.TemporaryDirectory(dir=self.work) as tmp:
            path = os.path.join(tmp, "query.tsq")
            with open(path, "wb") as f:
                f.write(query)
            return openssl("ts", "-reply", "-config", os.path.join(self.work, "tsa.cnf"), "-queryfile", path)

    def answer(self, query):
        path = self.path
        if path == "/other-data":
            return self.reply(openssl("ts", "-query", "-sha256", "-cert", "-digest", os.urandom(32).hex()))
        if path == "/wrong-nonce":
            digest = request_digest(query).hex()
            return self.reply(openssl("ts", "-query", "-sha256", "-cert", "-digest", digest))
        if path == "/not-a-tsa":
            return self.resigned_by_other(self.reply(query))
        if path == "/rejected":
            text = der(0x30, der(0x0C, b"test authority says no"))
            return der(0x30, der(0x30, der(0x02, b"\x02") + text))
        return self.reply(query)

    def resigned_by_other(self, response):
        with tempfile.TemporaryDirectory(dir=self.work) as tmp:
            join = lambda name: os.path.join(tmp, name)
            with open(join("resp.tsr"), "wb") as f:
                f.write(response)
            openssl("ts", "-reply", "-in", join("resp.tsr"), "-token_out", "-out", join("token.der"))
            openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", join("token.der"), "-binary",
                    "-out", join("tst.der"))
            token = openssl("cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-outform", "DER",
                            "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-in", join("tst.der"),
                            "-signer", os.path.join(self.work, "other.pem"),
                            "-inkey", os.path.join(self.work, "other.key"))
        return der(0x30, der(0x30, der(0x02, b"\x00")) + token)


def main():
    work = os.path.abspath(sys.argv[1])
    os.makedirs(work, exist_ok=True)
    make_pki(work)
    Handler.work = work
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    if "--until-stdin-closes" in sys.argv[2:]:
        def watch():
            sys.stdin.read()
            shutil.rmtree(work, ignore_errors=True)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
