"""Limits on request bodies while they stream in, before anything is parsed or stored: their size, and
how long they may take (a client that sends a byte now and then would otherwise hold a connection, a
request slot and a spooled file for as long as it likes)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTimeout, BodyTooLarge, error_response

# Room for multipart boundaries and the small form fields around the file part.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class BodyPace:
    """The next piece of a body must come within `idle_s`; past the first `idle_s` seconds the body must
    also average `min_bytes_per_s`. A 1 GB upload at that least rate is still allowed its hours."""

    idle_s: float
    min_bytes_per_s: float

    def wait_allowed(self, started: float, received: int, now: float) -> float:
        """Seconds the next receive may wait: the idle limit, or less once the average falls behind."""
        behind_by = now - (started + self.idle_s + received / self.min_bytes_per_s)
        return min(self.idle_s, -behind_by)


class BodyLimits:
    def __init__(self, app: ASGIApp, max_upload_bytes: int, pace: BodyPace) -> None:
        self.app = app
        self.limit = max_upload_bytes
        self.body_limit = max_upload_bytes + MULTIPART_OVERHEAD
        self.pace = pace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
            # Refuse before reading a byte of the body.
            response = error_response(
                413,
                "file_too_large",
                f"the upload is larger than the limit of {self.limit} bytes",
                {"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0
        started = time.monotonic()
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body, a receive waits for the disconnect: no limit on that
                return await receive()
            allowed = self.pace.wait_allowed(started, received, time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(allowed, 0.0))
            except TimeoutError:
                raise BodyTimeout(
                    f"the request body stopped arriving or came slower than {self.pace.min_bytes_per_s:.0f} "
                    f"bytes/s (after {received} bytes); send it again faster"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.body_limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)
