"""Wire models: one family per resource (``...Create`` in, ``...Public`` out).

Decimals travel as strings; timestamps as ISO-8601 with a zone (UTC on the way out).
"""
