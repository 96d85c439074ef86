"""Google connector: Forms and the usage Sheet in, KPI tables, Gmail and Calendar out."""
