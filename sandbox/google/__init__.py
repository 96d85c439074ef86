"""The emulated Google APIs (service-account tokens, Sheets, Forms, Gmail, Calendar)."""
