"""Pieces shared by the api and the worker: settings, ORM models, storage, audio I/O, the queue client."""
