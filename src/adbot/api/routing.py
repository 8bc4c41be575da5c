"""The route class of every API router: JSON bodies read by :func:`adbot.jsonbody.loads`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from adbot import jsonbody


class StrictJsonRequest(Request):
    """A request whose JSON body refuses a key named twice in one object: FastAPI reports
    it as malformed JSON (``400 malformed_json``, the key in the message)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = jsonbody.loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
