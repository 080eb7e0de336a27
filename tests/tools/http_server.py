#!/usr/bin/env python3
"""A photo server for the fetch tests, on loopback at a port the OS picks
(printed on the first line of stdout). Runs until killed.

  /img/NAME          the file NAME from the folder given as the argument
  /slow              answers after 30 s
  /drip              sends one byte a second, forever
  /chunked/N         N bytes, chunked, without a length
  /redirect?to=URL   302 to URL
  anything else      404
"""
import http.server
import os
import sys
import time
import urllib.parse

ROOT = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("http_server: " + (fmt % args) + "\n")

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            name = os.path.basename(url.path[5:])
            if url.path.startswith("/img/") and os.path.isfile(os.path.join(ROOT, name)):
                with open(os.path.join(ROOT, name), "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif url.path == "/slow":
                time.sleep(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif url.path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(60):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(1)
            elif url.path.startswith("/chunked/"):
                n = int(url.path[9:])
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"x" * 65536
                while n > 0:
                    part = block[: min(n, len(block))]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    n -= len(part)
                self.wfile.write(b"0\r\n\r\n")
            elif url.path == "/redirect":
                to = urllib.parse.parse_qs(url.query)["to"][0]
                self.send_response(302)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
