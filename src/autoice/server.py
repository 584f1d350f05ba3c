"""``autoice serve``: MLflow's scoring server for an autoice model, behind a check of each request.

MLflow's own server (``mlflow models serve``) answers three malformed requests with the wrong status,
inside its code and before the model sees them (MLflow 3.17): a POST to ``/invocations`` without a
``Content-Type`` header is a 500 (``None.split`` in ``scoring_server.invocations``), a JSON body
nested a few thousand deep is a 500 (``RecursionError`` in its ``json.loads``), and ``true`` inside
a channel is read as 1.0 by its numpy conversion, so the model cannot refuse it. No model code can
reach any of these; this server runs the same MLflow app (same protocol, same answers otherwise)
with :class:`RequestGuard` in front, which answers them with 415 / 400 and a message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from autoice.errors import AutoiceError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Request fields whose values are channel arrays (MLflow's tensor input formats).
_TENSOR_FIELDS = ("inputs", "instances")
_NUMBERS_NOTE = "(values are numbers; 0 = no data)"


def check_request(body: bytes, content_type: str | None) -> tuple[int, str] | None:
    """The HTTP status and message for a request to ``/invocations`` that MLflow would mishandle, or None.

    A missing Content-Type is 415 (MLflow's answer to a content type it does not take). A JSON body
    is parsed here: invalid or too deeply nested JSON is 400, and so is a channel holding anything
    but numbers, nested at most (batch, height, width). Everything else is left to MLflow.
    """
    from autoice.serving import CHANNEL_DIMS, non_number

    if content_type is None or not content_type.strip():
        return 415, ("request has no Content-Type header; send the JSON request with "
                     "Content-Type: application/json")  # fmt: skip
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    try:
        payload = json.loads(body)
    except RecursionError:
        return 400, ('request body: JSON nested too deeply (a request is {"inputs": {"<channel>": '
                     "(batch, height, width) array, ...}})")  # fmt: skip
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return 400, f"request body is not valid JSON ({exc})"
    if not isinstance(payload, dict):
        return None  # MLflow says what a request must be
    inputs = payload.get("inputs")
    if isinstance(inputs, dict):
        for name, value in inputs.items():
            problem = non_number(value, max_depth=CHANNEL_DIMS)
            if problem is not None:
                return 400, f"model input: channel {name} {problem} {_NUMBERS_NOTE}"
    for field in _TENSOR_FIELDS:
        value = payload.get(field)
        if field == "inputs" and isinstance(value, dict):
            continue
        if isinstance(value, list):
            values = [v for item in value for v in (item.values() if isinstance(item, dict) else [item])]
            problem = non_number(values, max_depth=CHANNEL_DIMS + 1)
            if problem is not None:
                return 400, f"{field} {problem} {_NUMBERS_NOTE}"
    return None


class RequestGuard:
    """ASGI middleware in front of MLflow's app: malformed requests are answered here, with a message.

    A POST to ``/invocations`` is read whole; if :func:`check_request` finds fault, that is the answer,
    else the same body goes on to the wrapped app. Other paths and methods pass straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/invocations":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"content-type"), None)
        problem = await asyncio.to_thread(check_request, body, content_type)  # parsing a big body takes a while
        if problem is not None:
            status, text = problem
            answer = json.dumps({"error_code": "BAD_REQUEST", "message": text}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(answer)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": answer})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, _reason_first(send))


def short_error(body: bytes) -> bytes:
    """A 400 answer with the reason alone: MLflow writes the whole request before it.

    MLflow's scoring server answers a model's input error with ``Failed to predict data '<the request
    as text>'. Error: <reason>``; a patch of channels is kilobytes to megabytes of numbers before the
    one line a client needs. Other answers are returned as they are.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    message = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(message, str) and message.startswith("Failed to predict data ") and "\nError: " in message:
        payload["message"] = message.rsplit("\nError: ", 1)[1]
        return json.dumps(payload).encode()
    return body


def _reason_first(send: Send) -> Send:
    """``send`` for the wrapped app, with a 400 answer's body passed through :func:`short_error`."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def guarded(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message.get("status") == 400:
            start = message  # held until the body is complete: its length changes
            return
        if start is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = short_error(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return guarded


def make_app(model_uri: str, *, tracking_uri: str | None = None) -> ASGIApp:
    """MLflow's scoring app for the autoice model at ``model_uri``, behind :class:`RequestGuard`."""
    from mlflow.pyfunc import scoring_server

    from autoice.serving import autoice_wrapper, load_model

    model = load_model(model_uri, tracking_uri=tracking_uri)
    autoice_wrapper(model, model_uri)
    return RequestGuard(scoring_server.init(model))


def serve(model_uri: str, *, host: str = "127.0.0.1", port: int = 5001, tracking_uri: str | None = None) -> None:
    """Load the model, then answer requests on ``host:port`` until interrupted.

    The address is tried first, so a port in use is one line before the model loads (not uvicorn's
    exit after it).
    """
    import socket

    import uvicorn

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise AutoiceError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from exc
    app = make_app(model_uri, tracking_uri=tracking_uri)
    uvicorn.run(app, host=host, port=port, log_level="info")
