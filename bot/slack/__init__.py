"""The Slack interface: a bolt AsyncApp over the same Services and FeedbackStore as the CLI.

Only this package knows Slack; retrieval and feedback are reached through their public
functions, so another chat platform would be a sibling package here, not a change elsewhere.
"""
