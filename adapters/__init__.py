"""Platform adapters (平台适配器): how envelopes of records leave the node for the platforms it serves.

- ``adapters.envelope``: the exchange envelope (交换信封) every format carries: ``Envelope``, ``masked``
  (grant masking, applied before sealing), ``seal`` (Merkle root + node signature), ``verify``,
  ``inclusion_proof``, and ``EnvelopeError`` (names the bad field).
- one codec per platform kind, each with ``encode``, ``decode`` and ``CONTENT_TYPE``:
  ``adapters.ministry`` (XML, ``schemas/ministry-envelope.xsd``), ``adapters.regional`` (JSON),
  ``adapters.department`` (protobuf ``exnode.v1.PlatformEnvelope``);
- ``adapters.platforms``: which platform gets which codec and queue, from a TOML file.

Nothing is imported here, so that using one codec does not load the others.
"""
