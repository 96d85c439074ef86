"""One package per tool, each with the same few modules: client.py (HTTP only), streams.py
(declarations), mapping.py (pure payload -> model rows), actions.py (write-back primitives),
sync.py (the stream runner for that tool), rule_actions.py (its rule actions over actions.py),
webhooks.py (for tools that send them) and connector.py: the ``CONNECTOR`` that
``connectors/registry.py`` lists, the one interface jobs and rules use. A client with much to
do about errors and retries keeps them beside it (Google's errors.py and retry.py)."""
