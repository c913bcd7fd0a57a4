"""Reusable Pulumi components for event-driven systems on AWS.

One component per module; each has a typed, keyword-only args class and creates
its children with secure defaults (encryption at rest, least privilege, DLQs and
alarms). Validation happens before any resource is declared.
"""
