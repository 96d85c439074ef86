"""The emulated Jira Cloud site (REST API v2/v3 as the `jira` library 3.10.x uses it).

See docs/sandbox.md (Jira section) and shared reference jira-api.md for what is emulated.
"""
