"""What one prediction request may carry, so that no client can exhaust a model server that other
clients share: the body's bytes (HTTP 413, checked before the body is parsed), the records per
request and the characters of a categorical value (HTTP 400 naming the value), and where an image
may be read from (inline, or the artifact store's object storage: never a local path, a URL of the
pod's network or a special file). Each bound is an environment variable of the model server."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

MAX_REQUEST_BYTES = int(os.environ.get("MLP_MAX_REQUEST_BYTES", str(16 * 1024 * 1024)))
MAX_RECORDS = int(os.environ.get("MLP_MAX_RECORDS", "1000"))
MAX_VALUE_CHARS = int(os.environ.get("MLP_MAX_VALUE_CHARS", "1024"))
OBJECT_STORE_SCHEMES = frozenset({"s3", "gs", "gcs", "az", "abfs", "abfss"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def image_uri_refusal(uri: str) -> str | None:
    """Why the server will not read an image from ``uri``; None when it may (the object store)."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in OBJECT_STORE_SCHEMES:
        return None
    return (
        "is neither base64 nor a URI of the artifact store's object storage "
        f"({', '.join(sorted(OBJECT_STORE_SCHEMES))}): the server reads no local path or URL"
    )


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is answered 413 without being read further; a
    body of unknown length (chunked) is read up to the limit, then handed on whole."""

    def __init__(self, app: AsgiApp, limit: int, refused: Callable[[], None]) -> None:
        self.app, self.limit, self.refused = app, limit, refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None:
            if length > self.limit:
                await self.refuse(send)
            else:
                await self.app(scope, receive, send)  # the server holds the body to its length
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # the client left: let the app see it
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self.refuse(send)
                return
            if not message.get("more_body"):
                break
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return whole

        await self.app(scope, replay, send)

    async def refuse(self, send: Send) -> None:
        self.refused()
        detail = f'{{"detail":"the request body is over {self.limit} bytes (MLP_MAX_REQUEST_BYTES)"}}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": detail.encode()})
