"""The entry point for `flask --app wsgi`, WSGI servers and tests."""

import sys

from broker import create_app

# Exit status of a process that cannot start: gunicorn's "worker failed to boot", so that
# gunicorn stops rather than starting the worker again and again.
CANNOT_START = 3

try:
    app = create_app()
except RuntimeError as error:  # a setting that stops the start: said in one line
    print(f"Error: {error}", file=sys.stderr)
    raise SystemExit(CANNOT_START) from None
