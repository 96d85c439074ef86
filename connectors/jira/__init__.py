"""Jira Cloud connector: client (the `jira` library), streams, mapping, sync, write-back."""
