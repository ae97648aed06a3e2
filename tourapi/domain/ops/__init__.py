"""The operators' web console, served at /ops."""
