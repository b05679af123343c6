"""The entry point for `flask --app wsgi`, WSGI servers and tests."""

from broker import create_app

try:
    app = create_app()
except RuntimeError as error:  # a setting that stops the start: said in one line
    raise SystemExit(f"Error: {error}") from None
