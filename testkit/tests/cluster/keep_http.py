"""A tiny raw HTTPS client for Keep requests the SDK will not send (bad bodies, Expect)."""

import socket
import ssl


class KeepConnection:
    """One TLS connection to the cluster; send raw requests, read raw responses."""

    def __init__(self, cluster):
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        host, port = cluster.api_host.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=30)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_head(self, method, path, token=None, headers=None):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
        if token:
            lines.append("Authorization: Bearer %s" % token)
        for name, value in (headers or {}).items():
            lines.append("%s: %s" % (name, value))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def read_response(self, head=False):
        """Return ``(status, {lower-case header: value}, body bytes)``.

        None if the server hung up.
        """
        status_line = self.file.readline()
        if not status_line:
            return None
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = self.file.readline().decode().rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head or status == 100 else int(headers.get("content-length", 0))
        body = self.file.read(length) if length else b""
        return status, headers, body

    def request(self, method, path, token=None, body=b"", headers=None, expect_continue=False):
        """Send a request (optionally with ``Expect: 100-continue``); return the final response.

        With ``expect_continue`` the body is sent only after ``100 Continue``;
        a final answer instead of 100 is returned without sending the body.
        """
        all_headers = dict(headers or {})
        if method in ("PUT", "POST"):
            all_headers.setdefault("Content-Length", str(len(body)))
        if expect_continue:
            all_headers["Expect"] = "100-continue"
        self.send_head(method, path, token, all_headers)
        if expect_continue:
            first = self.read_response()
            if first is None or first[0] != 100:
                return first
        if body:
            self.sock.sendall(body)
        return self.read_response(head=(method == "HEAD"))
