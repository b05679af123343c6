"""The floor for bench/live.py: a bare python-socketio server that only broadcasts.

The same server stack as the broker's (python-socketio with simple-websocket, in
threading mode under gunicorn's threaded worker, or with LIVEBENCH_ASYNC_MODE=gevent
in gevent mode under gunicorn's gevent worker), with nothing else: no Flask, no
database, no authentication (and, with LIVEBENCH_REDIS_URL, the same Redis message
queue). A client that connects joins one room; `POST /broadcast` emits the consult
payload (read from the JSON file named by LIVEBENCH_PAYLOAD, with a fresh "id") to
that room, then answers it as the broker's POST /api/consults does (201 and the
consult).

    LIVEBENCH_PAYLOAD=/tmp/payload.json gunicorn --workers 1 --threads 1100 \
        --pythonpath bench bare_socketio_server:app
    LIVEBENCH_PAYLOAD=/tmp/payload.json LIVEBENCH_ASYNC_MODE=gevent gunicorn \
        --workers 1 -k gevent --worker-connections 1100 \
        --pythonpath bench bare_socketio_server:app

Under gevent, gunicorn's worker monkey-patches the standard library before it
imports this module, so the lock below is a gevent one; without gevent-websocket
installed, python-engineio's gevent driver serves the websockets with
simple-websocket on greenlets (engineio/async_drivers/gevent.py).
"""

import itertools
import json
import os
import threading

import socketio

ROOM = "department:1"
ASYNC_MODE = os.environ.get("LIVEBENCH_ASYNC_MODE", "threading")  # or "gevent"

with open(os.environ["LIVEBENCH_PAYLOAD"], encoding="utf-8") as payload_file:
    PAYLOAD = json.load(payload_file)

# LIVEBENCH_REDIS_URL set: several such processes share a Redis message queue, as
# the broker's processes do with REDIS_URL, on a channel of their own
# (LIVEBENCH_REDIS_CHANNEL: floors running side by side each need their own).
_redis_url = os.environ.get("LIVEBENCH_REDIS_URL")
_channel = os.environ.get("LIVEBENCH_REDIS_CHANNEL", "livebench-floor")
sio = socketio.Server(
    async_mode=ASYNC_MODE,
    client_manager=(
        socketio.RedisManager(_redis_url, channel=_channel) if _redis_url else None
    ),
)
_ids = itertools.count(1_000_000)
_ids_lock = threading.Lock()


@sio.event
def connect(sid, environ, auth=None):
    sio.enter_room(sid, ROOM)


def http(environ, start_response):
    if environ["PATH_INFO"] != "/broadcast" or environ["REQUEST_METHOD"] != "POST":
        start_response("404 NOT FOUND", [("Content-Length", "0")])
        return [b""]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)  # the action's body, as the broker reads it
    with _ids_lock:
        consult = dict(PAYLOAD, id=next(_ids))
    sio.emit("consult", consult, to=ROOM)
    body = json.dumps(consult).encode()
    start_response(
        "201 CREATED",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


app = socketio.WSGIApp(sio, http)
