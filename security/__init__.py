"""Identity, access and integrity; imports only ``catalog``.

What others use: ``identity`` (JWT verification, principals, the development issuer), ``policy`` (the one
place that decides access: ``Policy``, ``Action``, ``Target``, ``PermissionDenied``), ``keys`` (the node's
keys: only ``KeyStore`` loads private keys; services get a ``SigningKey``, public keys or ``MacKeys``),
``merkle`` (batches, proofs, signing inputs), ``audit`` (the hash chain and checkpoints), ``masking``,
``xml`` (hardened parsing), ``feed_tokens`` and ``pull`` (MACed resume tokens and cursors), ``errors``
(SecurityError). Import the module you need; nothing is re-exported here.
"""
