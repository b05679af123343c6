"""Data made for people to look at: the demo, and synthetic histories for benchmarks.

It uses the broker (its domain functions, models and database) and is never
imported by the code that serves requests: the `demo` and `generate` commands
of broker/cli.py import it when they run.
"""
