"""Persistence: ``unit_of_work`` (UnitOfWork, SqlUnitOfWork, SqlUnitOfWorkFactory) is what use cases see;
the repositories (``catalog_repository``, ``lists_repository``, ``exchange_repository``,
``pull_repository``, ``tier_repository``, ``audit_repository``), ``tables`` and ``database`` (engines,
migrations) are storage's own, reached through a unit of work. ``errors``: StorageError.
"""
