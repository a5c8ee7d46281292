"""Pieces shared by the api and the worker: settings, ORM models, storage, audio I/O, the queue client."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("turkish-stt")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
