"""The elmo job service: a FastAPI app over a SQL store, with Celery workers doing the work."""
