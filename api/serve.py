"""Serve the api: `python -m api.serve [--host H] [--port P] [--proxy-headers]` (one process; run more
of them, or more containers, to use more cores).

uvicorn as it is, plus the one limit it lacks: it waits forever for a request's headers, so a client
that sends a header line now and then (slowloris) holds its connection as long as it likes. Here the
request line and headers must arrive within `STT_HEADER_TIMEOUT_SECONDS` of the connection opening or
of the previous response; the body's own pace is kept by `api.limits.BodyLimits`. Put a reverse proxy
with its own limits in front all the same (docs/SECURITY.md).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from stt_common.settings import get_settings


def with_header_deadline(base: type[Any], header_timeout_s: float) -> type[asyncio.Protocol]:
    """`base` (one of uvicorn's HTTP protocols) closing connections whose headers come too slowly."""

    class HeaderDeadline(base):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._awaiting_headers():
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this connection gets the same allowance

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._awaiting_headers() and not self.transport.is_closing():
                self.transport.close()

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline


def make_config(app: Any, host: str, port: int, header_timeout_s: float, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration with the header deadline; tests serve the app through this too."""
    return uvicorn.Config(
        app, host=host, port=port, http=with_header_deadline(AutoHTTPProtocol, header_timeout_s), **options
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m api.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8000, help="Port to listen on (default 8000).")
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="Trust X-Forwarded-For/-Proto from the addresses in FORWARDED_ALLOW_IPS.",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn's log level (default info).")
    args = parser.parse_args(argv)
    settings = get_settings()
    config = make_config(
        "api.main:app",
        args.host,
        args.port,
        settings.header_timeout_seconds,
        proxy_headers=args.proxy_headers,
        log_level=args.log_level,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
