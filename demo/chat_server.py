"""A local OpenAI-compatible chat-completions server that answers like a well-behaved model.

It stands in for GPT-4o, Gemini or a vLLM server in the pipeline demo
(``scripts/pipeline_demo.sh``) and in the tests; the real ``openai`` client talks to it
over HTTP. Its answers are canned, not a model's: valid annotations (``auto_reply``)
and a critic verdict for every candidate triplet named in the prompt. It shows the
machinery (requests, structured output, usage, retries, concurrency), never model quality.

Tests script replies in order (``server.push(...)``); ``delay_s`` makes every answer take
that long (a model's latency), and ``max_in_flight`` records the most requests it held
at once, so a client's concurrency limit can be checked from the server's side. Every
request body is recorded. ``python -m demo.chat_server --port 8089 --delay 2`` serves it
until interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.vocabulary import EMOTIONS, ROLES

GOOD_TRIPLETS = [
    {"background": "stormy beach at dusk", "attribute": "dark heavy clouds", "subject": "lone fisherman"},
    {"background": "grey sea", "attribute": "crashing waves", "subject": "small wooden boat"},
]


def distribution(peak: str, p: float = 0.72) -> dict[str, float]:
    """A valid distribution with ``p`` on ``peak`` and the rest spread evenly."""
    rest = (1.0 - p) / (len(EMOTIONS) - 1)
    return {e: (p if e == peak else rest) for e in EMOTIONS}


def annotation_json(
    *,
    peak: str = "fear",
    p: float = 0.72,
    triplets: list[dict[str, str]] | None = None,
    rationale: str = "The dark clouds evoke fear.",
) -> str:
    return json.dumps(
        {"triplets": triplets or GOOD_TRIPLETS[:1], "distribution": distribution(peak, p), "rationale": rationale}
    )


_CANDIDATE = re.compile(r"^(\d+)\. background: ", re.MULTILINE)


def critic_json(prompt: str, *, verdict: str = "ok", label_verdict: str = "ok") -> str:
    """A valid critic answer with ``verdict`` for every candidate triplet listed in ``prompt``."""
    count = len(_CANDIDATE.findall(prompt))
    elements = [
        {"triplet_index": i, "role": r, "verdict": verdict, "reasoning": f"the {r} is visible"}
        for i in range(count)
        for r in ROLES
    ]
    return json.dumps(
        {
            "reasoning": "I looked at the sky, the sea and the person; the elements match the label.",
            "elements": elements,
            "label_verdict": label_verdict,
            "label_reasoning": "The scene is threatening.",
            "suggested_label": None,
        }
    )


@dataclass
class Reply:
    """One scripted answer. ``status`` != 200 sends an API error body; with ``until``, the
    server holds the answer until that event is set (a client's timeout runs out first)."""

    content: str | None = None
    status: int = 200
    finish_reason: str = "stop"
    refusal: str | None = None
    until: threading.Event | None = None
    delay_s: float | None = None  # None: the server's delay_s
    prompt_tokens: int = 1200
    completion_tokens: int = 150
    headers: dict[str, str] = field(default_factory=dict)


def prompt_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(c.get("text", "") for c in content if c.get("type") == "text")
    return "\n".join(parts)


def schema_name(body: dict[str, Any]) -> str | None:
    fmt = body.get("response_format") or {}
    return (fmt.get("json_schema") or {}).get("name")


PEAKS = {"fake-a": ("fear", 0.7), "fake-b": ("sadness", 0.45)}


def auto_reply(body: dict[str, Any]) -> Reply:
    """Answer like a good model: an annotation or a critic verdict, from the request."""
    if schema_name(body) == "emoverse_critic" or "You are a careful critic" in prompt_text(body):
        return Reply(critic_json(prompt_text(body)))
    peak, p = PEAKS.get(body.get("model", ""), ("fear", 0.7))
    return Reply(annotation_json(peak=peak, p=p, triplets=GOOD_TRIPLETS))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many clients at once: none refused by the listen backlog


class ChatServer:
    """``port`` 0 picks a free port (see :attr:`base_url`); ``delay_s``: seconds every answer takes."""

    def __init__(
        self,
        responder: Callable[[dict[str, Any]], Reply] = auto_reply,
        *,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.responder = responder
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self.script:
                return self.script.popleft()
        return self.responder(body)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        chat = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(
                        404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}, {}
                    )
                    return
                chat._enter()
                try:  # counted in flight until the answer is ready, not until the client has read it
                    status, payload, headers = self._answer(chat._next(body), body)
                finally:
                    chat._leave()
                self._send(status, payload, headers)

            def _answer(self, reply: Reply, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
                if reply.until is not None:
                    reply.until.wait()
                delay = chat.delay_s if reply.delay_s is None else reply.delay_s
                if delay > 0:
                    time.sleep(delay)
                if reply.status != 200:
                    error = {
                        "message": reply.content or f"scripted HTTP {reply.status}",
                        "type": "server_error",
                        "code": None,
                    }
                    return reply.status, {"error": error}, reply.headers
                message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
                return (
                    200,
                    {
                        "id": f"chatcmpl-{len(chat.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [
                            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
                        ],
                        "usage": {
                            "prompt_tokens": reply.prompt_tokens,
                            "completion_tokens": reply.completion_tokens,
                            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                        },
                    },
                    reply.headers,
                )

        return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve canned answers until interrupted (the pipeline demo, manual runs of ``ml_check``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer takes (a model's latency)")
    args = parser.parse_args(argv)
    server = ChatServer(delay_s=args.delay, host=args.host, port=args.port).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
