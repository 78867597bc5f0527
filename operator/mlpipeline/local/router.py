"""A weighted HTTP router in front of a stable and a canary model server (the local stand-in for
Gateway API weights): each request goes to the canary with probability weight/100. ``route``
changes the backends and the weight in place, while the router keeps listening."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Router:
    stable: str
    port: int
    canary: str | None = None
    weight: int = 0
    host: str = "127.0.0.1"
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _runner: web.AppRunner | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, stable: str, canary: str | None, weight: int) -> None:
        self.stable, self.canary, self.weight = stable, canary, weight

    def pick(self) -> str:
        if self.canary and self.weight > 0 and random.random() * 100 < self.weight:
            return self.canary
        return self.stable

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        backend = self.pick()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        session: aiohttp.ClientSession = request.app[SESSION]
        try:
            async with session.request(
                request.method, backend + request.rel_url.path_qs, data=await request.read(), headers=headers
            ) as upstream:
                body = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=upstream.status, body=body, headers=out)
        except aiohttp.ClientError as exc:
            return web.Response(status=502, text=f"upstream {backend} failed: {exc}")

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        # A connection idle for longer than the model server keeps it open (uvicorn: 5 s) is not
        # reused: a request on a connection the server is closing would fail (a 502 here).
        app[SESSION] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(keepalive_timeout=2)
        )
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self._ready.set()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.app[SESSION].close()
            await self._runner.cleanup()

    def start(self) -> Router:
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="router", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the router did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None
