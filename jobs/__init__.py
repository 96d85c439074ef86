"""Scheduled and event-driven jobs: the sync cycle, the demo, and (later) the service."""
