"""The rule engine: YAML rules admins own, validated with file:line, dry-runnable, traced,
each effect exactly once through the action ledger (docs/rules.md).

Entry points: ``rules.engine.run_cycle`` and the functions of ``rules.api`` for the CLI.
"""
