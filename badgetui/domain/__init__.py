"""Pure domain: event and configuration models, rule evaluation, progress arithmetic, lint.

Nothing here touches a database, the network or a UI, so every rule of semantics.md can be
tested in isolation and reused by the store, the services and the TUI alike.
"""
