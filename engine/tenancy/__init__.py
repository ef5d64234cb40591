"""Tenants: many customers in one store, their API keys and deployed bundle versions (see ``docs/service.md``).

``TenantHub`` (``regelwerk.tenancy.hub``) is the entry point; ``regelwerk.tenancy.rls`` isolates tenants on
PostgreSQL with row-level security; ``regelwerk.tenancy.worker`` ticks every tenant's due work.
"""
