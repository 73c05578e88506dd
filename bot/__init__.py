"""The interfaces: CLI, terminal shell and Slack app, and the wiring behind them.

The only package that knows about Slack; `feedback` and `retrieval` stay interface-agnostic.
"""
