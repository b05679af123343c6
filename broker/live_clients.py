"""The Socket.IO client managers: python-socketio's, with two duties added in every process.

- Closing a credential's room (`session:<id>`, `token:<id>`) disconnects the sockets
  in it, on this process. With REDIS_URL set, python-socketio relays the close to
  every process (pubsub_manager: `close_room` is published, and each process runs
  `basic_close_room` on its own sockets), so a session ended anywhere closes its
  sockets everywhere.
- Each `consult` push is reported, with the sockets of this process it reached,
  to `on_consult_pushed(sids, payload)` (the access audit of live pushes).
"""

import socketio

CREDENTIAL_ROOMS = ("session:", "token:")


class _Duties:
    on_consult_pushed = None  # set by broker.live

    def basic_close_room(self, room, namespace):
        if isinstance(room, str) and room.startswith(CREDENTIAL_ROOMS):
            for sid in [sid for sid, _ in self.get_participants(namespace, room)]:
                self.server.disconnect(sid, namespace=namespace, ignore_queue=True)
        super().basic_close_room(room, namespace)

    def _pushed(self, event, data, namespace, room) -> None:
        if event == "consult" and self.on_consult_pushed is not None:
            sids = [sid for sid, _ in self.get_participants(namespace or "/", room)]
            if sids:
                self.on_consult_pushed(sids, data)


class LocalManager(_Duties, socketio.Manager):
    """One process: pushes are delivered here."""

    def emit(self, event, data, namespace, room=None, skip_sid=None, **kwargs):
        super().emit(event, data, namespace, room=room, skip_sid=skip_sid, **kwargs)
        self._pushed(event, data, namespace, kwargs.get("to") or room)


class QueueManager(_Duties, socketio.RedisManager):
    """Several processes sharing Redis: each delivers to its own sockets here."""

    def _handle_emit(self, message):
        super()._handle_emit(message)
        data = message.get("data")
        if isinstance(data, list) and len(data) == 1 and not message.get("binary"):
            self._pushed(
                message.get("event"),
                data[0],
                message.get("namespace"),
                message.get("room"),
            )


def client_manager(redis_url: str, channel: str):
    if redis_url:
        return QueueManager(redis_url, channel=channel)
    return LocalManager()
