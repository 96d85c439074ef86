"""A local, stateful emulator of the Podio, Jira and Google APIs saeko-sync uses.

One HTTP server on 127.0.0.1 serves each tool under its own prefix (``/podio``, ``/jira``,
``/google``) and an inspection API under ``/_sandbox`` (docs/sandbox.md).
"""
