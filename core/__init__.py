"""Cross-cutting pieces: settings, logging, errors, time helpers."""
