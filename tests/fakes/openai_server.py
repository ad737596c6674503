"""A stdlib OpenAI-compatible server with scripted failures, for driving the real llm proposer over HTTP.

`FakeOpenAI(steps)` listens on a free loopback port in a daemon thread. It serves `GET /v1/models` and
`POST /v1/chat/completions`. A request that offers tools (a proposal: pydantic-ai asks for its output as a
tool call) takes the next step of the script, the last step repeating; a request without tools (the
start-up check) is answered with a short text. Steps:

    {"reply": {...}}                      a tool call of the output tool with these arguments (JSON)
    {"malformed": True}                   a tool call whose arguments are not JSON
    {"status": 500, "for_seconds": 5}     that HTTP status while the step is younger than for_seconds
    {"status": 429, "retry_after": "3"}   with a Retry-After header
    {"hang": True}                        read the request, never answer (until the server closes)

`key` makes the server answer 401 to any other bearer token; `model` is the only model it knows (404
`model_not_found` for others); any other path is a 404. Every request is recorded (time, path, tools).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-model"


@dataclass
class Seen:
    at: float
    path: str
    tools: bool
    body: dict[str, Any] = field(default_factory=dict)


class FakeOpenAI:
    def __init__(self, steps: list[dict[str, Any]], key: str | None = None, model: str = MODEL) -> None:
        self.steps, self.key, self.model = list(steps), key, model
        self.seen: list[Seen] = []
        self._step_started: float | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def proposals(self) -> list[Seen]:
        return [s for s in self.seen if s.tools]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_step(self) -> dict[str, Any]:
        """The script's current step; a timed step stays current until it is old enough."""
        with self._lock:
            now = time.monotonic()
            while True:
                step = self.steps[0]
                if "for_seconds" in step:
                    self._step_started = self._step_started or now
                    if now - self._step_started < step["for_seconds"] or len(self.steps) == 1:
                        return step
                    self.steps.pop(0)
                    self._step_started = None
                    continue
                if len(self.steps) > 1:
                    self.steps.pop(0)
                return step

    def wait_closed(self) -> None:
        self._closing.wait()


def refused_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": fake.model, "object": "model", "owned_by": "fake"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.seen.append(Seen(time.monotonic(), self.path, bool(body.get("tools")), body))
            if not self._authorized():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            if body.get("model") != fake.model:
                error = {"message": f"The model `{body.get('model')}` does not exist", "code": "model_not_found"}
                self._json(404, {"error": {**error, "type": "invalid_request_error"}})
                return
            if not body.get("tools"):
                self._json(200, _completion(fake.model, {"role": "assistant", "content": "pong"}, "stop"))
                return
            self._step(fake.next_step(), body)

        def _step(self, step: dict[str, Any], body: dict[str, Any]) -> None:
            if step.get("hang"):
                fake.wait_closed()
                return
            if "status" in step:
                headers = {"Retry-After": step["retry_after"]} if "retry_after" in step else {}
                self._json(step["status"], {"error": {"message": "scripted failure", "type": "server_error"}}, headers)
                return
            tool = body["tools"][0]["function"]["name"]
            arguments = "{not json" if step.get("malformed") else json.dumps(step["reply"])
            call = {"id": f"call_{len(fake.seen)}", "type": "function", "function": {"name": tool, "arguments": arguments}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            self._json(200, _completion(fake.model, message, "tool_calls"))

        def _authorized(self) -> bool:
            if fake.key is None or self.headers.get("Authorization") == f"Bearer {fake.key}":
                return True
            self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
            return False

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:  # the client gave up
                pass

    return Handler


def _completion(model: str, message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    }
