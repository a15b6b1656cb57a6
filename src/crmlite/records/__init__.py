"""The records engine: insert, update, upsert, get, list, delete. Knows nothing of HTTP."""
