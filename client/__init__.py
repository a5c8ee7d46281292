"""A Python client (`client.api.SttClient`) and the `stt` command line built on it."""
