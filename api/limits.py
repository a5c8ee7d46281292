"""Caps the size of upload request bodies while they stream in, before anything is stored."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLarge, error_response

# Room for multipart boundaries and the small form fields around the file part.
MULTIPART_OVERHEAD = 64 * 1024


class UploadSizeLimit:
    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.limit = max_upload_bytes
        self.body_limit = max_upload_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
            # Refuse before reading a byte of the body.
            response = error_response(
                413, "file_too_large", f"the upload is larger than the limit of {self.limit} bytes",
                {"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counting_receive, send)
