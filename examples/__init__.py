"""Runnable workflows from the README; each is exercised by tests/test_examples.py."""
