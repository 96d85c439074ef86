"""The normalized SQL model every rule and KPI reads, and the helpers to reach it."""
