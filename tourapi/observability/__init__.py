"""Observability: Prometheus metrics (/metrics) and the wiring of structured logs into the app."""
