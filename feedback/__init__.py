"""Feedback: answers, votes and corrections, their validation, learning, evaluation and versions.

Knows nothing of Slack; builds on `retrieval` only.
"""
