"""One router per resource; ``ROUTERS`` is everything mounted under ``/v1``."""
