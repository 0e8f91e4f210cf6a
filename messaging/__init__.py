"""Messaging: the transactional outbox and its relay, the consumer runtime with its inbox
and dead letters, consumer groups, retention and replay. Built on :mod:`platform_kit`.
"""
