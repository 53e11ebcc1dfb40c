"""A local OpenAI-compatible chat server for the generator tests: `chat_stub(respond)` starts one on 127.0.0.1."""

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# respond(body, index) -> (status, texts, delay_s): `index` counts requests from 1; texts None sends an error body
Respond = Callable[[dict, int], tuple[int, list[str] | None, float]]


class ChatStub:
    """POST /v1/chat/completions answered by `respond`; every request is recorded as (path, body) in `requests`."""

    def __init__(self, respond: Respond) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append((self.path, body))
                    index = len(stub.requests)
                status, texts, delay_s = respond(body, index)
                time.sleep(delay_s)
                if texts is None:
                    payload = json.dumps({"error": f"scripted failure: HTTP {status}"}).encode()
                else:
                    choices = [{"index": i, "message": {"role": "assistant", "content": text}}
                               for i, text in enumerate(texts)]
                    usage = {"completion_tokens": sum(len(text.split()) for text in texts)}  # words as tokens
                    payload = json.dumps({"choices": choices, "usage": usage}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow request
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat_stub():
    """A factory: `chat_stub(respond)` starts a `ChatStub`; every one started is closed after the test."""
    servers: list[ChatStub] = []

    def start(respond: Respond) -> ChatStub:
        servers.append(ChatStub(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
