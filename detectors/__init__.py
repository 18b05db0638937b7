"""Pure detection: rules (data), the engine, entropy, decoders, filters, validators.

Bytes in, matches out: nothing here knows about git, images, HTTP or databases.
"""
