"""The Celery worker: preloaded ONNX recognizers turn queued jobs into transcripts."""
