"""The entry point for `flask --app wsgi`, WSGI servers and tests."""

from broker import create_app

app = create_app()
