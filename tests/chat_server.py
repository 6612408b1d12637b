"""A scripted OpenAI-compatible chat-completions server on a local port (the peer the VLM judge
and the LLM speak to), for tests: ``chat_server.script(said("Yes."), failing(500), ...)``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

MODEL = "easel-vlm-test"


@dataclass
class Reply:
    """One scripted response: a status, a JSON (dict/list) or raw (str) body, headers, and how
    long the server waits before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def said(content: str) -> Reply:
    """A 200 chat completion whose first choice says ``content``."""
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    )


def failing(status: int, **headers: str) -> Reply:
    return Reply(status=status, body={"error": {"message": f"scripted {status}"}}, headers=headers)


class ChatServer:
    """Answers POST /v1/chat/completions with the scripted replies, in order; the last one
    repeats. Records every request it received."""

    def __init__(self) -> None:
        self._replies: list[Reply] = [said("Yes.")]
        self._lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.url = ""

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies = list(replies)

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.received.append(request)
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.received]


def _handler_for(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            reply = server._next(
                {"path": self.path, "headers": dict(self.headers), "json": json.loads(raw)}
            )
            time.sleep(reply.delay)
            body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())
            except OSError:  # the client timed out and hung up: nothing to answer
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def serve() -> Iterator[ChatServer]:
    server = ChatServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    # A short poll interval: shutdown() waits for it, 0.5 s per test by default.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


chat_server = pytest.fixture(serve, name="chat_server")
