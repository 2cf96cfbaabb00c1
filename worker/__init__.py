"""Celery workers: training (GPU) and batch inference; they drive elmo_core, the DB is the truth."""
