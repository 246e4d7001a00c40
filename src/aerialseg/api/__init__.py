"""HTTP API and web page (``aerialseg serve``); needs the ``serve`` extra."""
