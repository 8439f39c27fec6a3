"""The coaching platform's shared library: event contracts and the Kafka/MongoDB plumbing.

Services depend on this package only; nothing else crosses between them.
"""
