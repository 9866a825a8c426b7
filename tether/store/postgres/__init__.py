"""The PostgreSQL store, for many worker and server processes sharing one database."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
