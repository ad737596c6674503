"""A local OpenAI-compatible chat server for running the real aider CLI in tests (stdlib only).

POST /v1/chat/completions answers, streamed or not, as a model would answer aider:
- asked for a commit message (aider's own second request): a one-line conventional commit subject;
- asked for an edit: the first of EDITS that applies to the train.py aider sent (`LEARNING_RATE = 0.04` ->
  `0.1`, then `DEPTH = 4` -> `6`), in the edit format aider's system prompt asks for (SEARCH/REPLACE blocks
  for `diff`, the whole file for `whole`).
Every request is appended to `requests` (path, Authorization header, the messages) for the test to read.

Run alone: `python tests/fakes/aider_server.py` prints its base URL and serves until killed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EDITS = [  # (old, new, commit subject): the first whose old text is in train.py
    ("LEARNING_RATE = 0.04", "LEARNING_RATE = 0.1", "feat: raise LEARNING_RATE to 0.1 for faster convergence"),
    ("DEPTH = 4", "DEPTH = 6", "feat: deepen the model to 6 layers"),
]
FILE_IN_MESSAGE = re.compile(r"^train\.py\n```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def reply_for(messages: list[dict]) -> str:
    text = "\n".join(_content(m) for m in messages)
    system = "\n".join(_content(m) for m in messages if m.get("role") == "system")
    sources = FILE_IN_MESSAGE.findall(text)
    source = sources[-1] if sources else text
    if "commit message" in system.lower():  # the diff of what it applied: its added line names the edit
        return next((subject for _, new, subject in EDITS if f"+{new}" in text), "chore: update train.py")
    old, new, subject = next((edit for edit in EDITS if edit[0] in source), EDITS[-1])
    explanation = f"{subject.removeprefix('feat: ').capitalize()}: `{old}` -> `{new}`."
    if "SEARCH" in system and "REPLACE" in system:
        line = _line(source, old)
        return f"{explanation}\n\ntrain.py\n```python\n<<<<<<< SEARCH\n{line}\n=======\n{line.replace(old, new)}\n>>>>>>> REPLACE\n```\n"
    return f"{explanation}\n\ntrain.py\n```python\n{source.replace(old, new).rstrip()}\n```\n"


def _content(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _line(text: str, old: str) -> str:
    """The whole source line that holds `old` (a SEARCH block must match a line exactly)."""
    match = re.search(rf"^.*{re.escape(old)}.*$", text, re.MULTILINE)
    return match[0] if match else old


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._json({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "tests"}]})
        else:
            self._json({"error": {"message": f"no route {self.path}"}}, status=404)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        messages = body.get("messages") or []
        self.server.record({"path": self.path, "authorization": self.headers.get("Authorization"), "messages": messages})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json({"error": {"message": f"no route {self.path}"}}, status=404)
            return
        answer = reply_for(messages)
        if body.get("stream"):
            self._stream(answer, body.get("model", "fake-model"))
        else:
            self._json(_completion(answer, body.get("model", "fake-model")))

    def _json(self, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, answer: str, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        pieces = [answer[i : i + 200] for i in range(0, len(answer), 200)]
        for number, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if number == 0 else {"content": piece}
            self._event(_chunk(model, delta, None))
        self._event(_chunk(model, {}, "stop") | {"usage": _usage(answer)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")


def _chunk(model: str, delta: dict, finish: str | None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage(answer: str) -> dict:
    return {"prompt_tokens": 100, "completion_tokens": len(answer) // 4 + 1, "total_tokens": 100 + len(answer) // 4 + 1}


def _completion(answer: str, model: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": _usage(answer),
    }


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    def record(self, request: dict) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


if __name__ == "__main__":
    with FakeServer() as server:
        print(server.base_url, flush=True)
        threading.Event().wait()
