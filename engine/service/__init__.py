"""``regelwerk serve``: the multi-tenant HTTP/JSON API (FastAPI + uvicorn), see ``docs/service.md``."""
