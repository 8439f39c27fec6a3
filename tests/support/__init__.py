"""Helpers for the integration tests: infrastructure, Kafka readers, service processes."""
