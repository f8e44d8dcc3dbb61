"""The use cases: ``catalog`` (CatalogApplication), ``catalog_feed`` (CatalogFeed), ``lists``
(ListsApplication), ``audit`` (AuditWriter, AuditApplication), ``pull`` (PullApplication), ``exchange``
(ExchangeApplication: provider keys, subscriptions, receipts, status), ``errors`` (ServiceError). Each use
case is one unit of work and asks the policy; gRPC, the CLI and the console call them, never storage.
"""
