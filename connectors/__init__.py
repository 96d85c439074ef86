"""One package per tool, each with the same few modules: client.py (HTTP only), streams.py
(declarations), mapping.py (pure payload -> model rows), actions.py (write-back primitives),
sync.py (the stream runner for that tool)."""
