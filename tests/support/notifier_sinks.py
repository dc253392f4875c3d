"""Real local destinations for the notifier's tests: an SMTP server (aiosmtpd) and an HTTP webhook
receiver, both on 127.0.0.1, each recording what it received."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.ports import free_tcp_port


@dataclass
class Mailbox:
    """What the SMTP server accepted: parsed messages, and the logins it saw."""

    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    received: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.received:
            self.messages.append(message)
            self.received.notify_all()
        return "250 OK"

    def texts(self) -> list[str]:
        out = []
        for message in list(self.messages):
            body = message.get_body(preferencelist=("plain", "html"))
            out.append(f"{message['Subject']}\n{body.get_content() if body is not None else ''}")
        return out


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox

    def url(self, *, to: str = "ops@example.com", sender: str = "tradewire@example.com", user: str = "",
            password: str = "") -> str:
        """An apprise ``mailto://`` URL for this server (plain SMTP, no TLS)."""
        login = f"{user}:{password}@" if user else ""
        return f"mailto://{login}localhost:{self.port}?to={to}&from={sender}&smtp={self.host}&mode=insecure"


@contextmanager
def smtp_server(*, user: str = "", password: str = "") -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1; with ``user`` it requires that login (AUTH over plain SMTP)."""
    mailbox = Mailbox()
    kwargs: dict[str, Any] = {}
    if user:
        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            if isinstance(data, LoginPassword):
                login = (data.login.decode(), data.password.decode())
                mailbox.logins.append(login)
                if login == (user, password):
                    return AuthResult(success=True)
            return AuthResult(success=False, handled=False)

        kwargs = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
    port = free_tcp_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()


@dataclass
class Webhook:
    """Recorded POSTs; the first ``fail_first`` requests are answered 500."""

    port: int = 0
    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook", scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r, status in zip(self.requests, self.statuses, strict=True) if status == 200]


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[Webhook]:
    hook = Webhook(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with hook.lock:
                status = 500 if len(hook.requests) < hook.fail_first else 200
                hook.requests.append(json.loads(raw or b"{}"))
                hook.headers.append(dict(self.headers.items()))
                hook.statuses.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
