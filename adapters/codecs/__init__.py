"""The formats envelopes travel in (交换信封): ``envelope`` (the envelope itself: ``Envelope``, ``masked``,
``seal``, ``verify``, inclusion proofs, ``EnvelopeError``), and one codec per platform kind, each with
``encode``, ``decode`` and ``CONTENT_TYPE``: ``ministry`` (XML, ``schemas/ministry-envelope.xsd``),
``regional`` (JSON), ``department`` (protobuf ``exnode.v1.PlatformEnvelope``) and ``relay`` (between the
nodes of two tiers).

Nothing is imported here, so that using one codec does not load the others: import the module you need.
"""
