"""Alembic environment: the URL comes from the config (`service.core.migrate`) or settings."""

from __future__ import annotations

from alembic import context

from service.core.config import get_settings
from service.core.db import get_engine
from service.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with get_engine(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
