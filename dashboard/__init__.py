"""The tarry dashboard: a Textual app over engine.Client (see the dashboard issue)."""
