"""Benchmark: from an action's HTTP response to every connected client having the event.

N clients (100, 500, 1,000 department members) hold Socket.IO connections; a
driver in the same process creates consults (POST /api/consults) one at a time.
For every action it takes the moment the HTTP response arrived and the moment
each client received the `consult` event, on one clock (time.monotonic, one
process). Four configurations are measured in the same run:

- floor, 1 process: a bare python-socketio server (bench/bare_socketio_server.py,
  the same server stack: threading mode, simple-websocket, gunicorn's threaded
  worker) broadcasting the same payload to the same clients on `POST /broadcast`;
- broker, 1 process: `make serve` (gunicorn --workers 1 --threads T wsgi:app),
  with T = clients + 50 and --worker-connections above it: a websocket holds a
  thread, and gthread stops accepting at worker_connections (default 1,000);
- floor, 2 processes: two bare servers sharing a Redis message queue, the
  clients split evenly across them, the broadcast requested from the first;
- broker, 2 processes + Redis: two broker processes sharing REDIS_URL, split
  and driven alike.

With `--async-modes threading,gevent` (gevent installed: it is not in
requirements.txt) the same four run in gevent mode too: floor1g, broker1g,
floor2g, broker2g. Their servers are `gunicorn -k gevent --worker-connections C`
(C = clients + 50; no threads), the floor with `socketio.Server(async_mode=
"gevent")`, the broker with SOCKETIO_ASYNC_MODE=gevent. Without gevent-websocket,
python-engineio's gevent driver serves the websockets with simple-websocket on
greenlets, and psycopg 3 sees gevent's monkey-patching and waits cooperatively.

Each configuration runs side by side with its floor: all the configurations of a
process count that are selected (floor and broker, threading and gevent) are up
together, the same number of clients connected to each, actions taking turns
(floor, broker, broker, floor, ...), so that whatever else the machine does weighs
on all alike.

Two figures per action: from the action's HTTP response (the issue's measure)
and from the moment the request was sent. The broker pushes inside the request,
after the commit and before answering, so the first can be zero or negative: the
second is what a clinician waiting for a colleague's screen to change sees.

    /tmp/v/bin/python bench/live.py \
        --database-url postgresql://postgres@127.0.0.1/broker_livebench
    .venv/bin/python bench/live.py --async-modes threading,gevent \
        --database-url postgresql://postgres@127.0.0.1/broker_livebench

The database given is WIPED (schema dropped, migrated afresh, 1,000 members
seeded). Use a dedicated one; it is created if missing. Servers listen on free
127.0.0.1 ports and are stopped at the end. Figures: bench/README.md.

The clients are a minimal Socket.IO-over-websocket implementation on asyncio
(one process, one thread): python-socketio's own clients need either a thread
pair per connection (2,000 threads for 1,000 clients) or aiohttp, which is not
installed. They speak the same protocol to the server (Engine.IO 4 websocket
transport, Socket.IO 5 connect with auth={"token": ...}) and do no work on a
received event but note the time and read the consult's id.
"""

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import benchdb  # noqa: E402

from tests.helpers import ServerProcess, gunicorn_server  # noqa: E402

SIZES = [100, 500, 1_000]
GOAL_CLIENTS = 500
GOAL_P99_MS = 100.0
GOAL_RATIO = 1.5
CHEAP_HASH = "scrypt:1024:8:1"  # seeding 1,000 users: the hash cost is not measured
PASSWORD = "bench-password"
SLUG = "livebench"
ACTION_BODY = {
    "department": SLUG,
    "urgency": "routine",
    "patient_ref": "MRN-0000001",
    "question": "Benchmark consult: is there a finding that changes management?",
}
CONNECT_CONCURRENCY = 20
EVENT_TIMEOUT_S = 10.0  # an action whose event has not reached everyone by then fails
FLOOR_APP = "bare_socketio_server:app"
EXTRA_THREADS = 50  # gunicorn threads beyond one per websocket: for the HTTP actions
ASYNC_MODES = ("threading", "gevent")


# --- database -----------------------------------------------------------------


def seed(url: str, members: int) -> dict:
    """One department with `members` members (each with a token), and a requester.

    Also returns one consult as the broker pushes it: the floor's payload.
    """
    from broker import accounts, create_app
    from broker.api.schemas import ConsultSchema
    from broker.consults import actions
    from broker.extensions import db

    app = create_app(
        {
            "DATABASE_URL": url,
            "PASSWORD_HASH_METHOD": CHEAP_HASH,
            "SWEEP_INTERVAL_SECONDS": 0,
            "SECRET_KEY": "bench",
        }
    )
    with app.app_context():
        department = accounts.create_department(SLUG, "Live benchmark")
        requester = accounts.create_user(
            "requester@livebench.test", "Requester", PASSWORD
        )
        requester_token = accounts.issue_token(requester)
        tokens = []
        for i in range(members):
            user = accounts.create_user(
                f"member{i}@livebench.test", f"Member {i}", PASSWORD
            )
            accounts.add_member(department, user)
            tokens.append(accounts.issue_token(user))
        consult = actions.create(requester, **ACTION_BODY)
        payload = ConsultSchema().dump(consult)
        db.session.remove()
        db.engine.dispose()
    return {
        "requester_token": requester_token,
        "tokens": tokens,
        "payload": payload,
    }


# --- servers -------------------------------------------------------------------


def worker_pid(server: ServerProcess) -> int:
    """The pid of the gunicorn process's one worker."""
    pid = server.process.pid
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def cpu_seconds(server: ServerProcess) -> float:
    """The worker's CPU time so far (user + system)."""
    stat = Path(f"/proc/{worker_pid(server)}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = stat.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def rss_kb(server: ServerProcess) -> int:
    """The worker's resident memory."""
    for line in Path(f"/proc/{worker_pid(server)}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- clients: Socket.IO over a websocket, on asyncio ---------------------------


def mask_frame(text: str, opcode: int = 0x1) -> bytes:
    """A client frame (clients must mask what they send: RFC 6455 5.3)."""
    data = text.encode()
    n = len(data)
    key = os.urandom(4)
    if n:
        stream = (key * (n // 4 + 1))[:n]
        data = (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            n, "big"
        )
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + key + data


class Hub:
    """What the clients of one measurement received, and when.

    The action's consult id is known only when its response arrives, and events
    may come first; so each client keeps the first arrival time of every consult
    id it gets, and the measurement counts the expected one only. Events for
    other consults (another deployment sharing the Redis channel, say) are kept
    apart and reported, never timed.
    """

    def __init__(self):
        self.armed = False
        self.active = 0  # clients 0..active-1 take part in the measurement
        self.seen: list[dict[int, float]] = []
        self.expected = None
        self.count = 0
        self.done = asyncio.Event()

    def arm(self, active: int) -> None:
        self.active = active
        self.seen = [{} for _ in range(active)]
        self.expected = None
        self.count = 0
        self.done = asyncio.Event()
        self.armed = True

    def expect(self, consult_id: int) -> None:
        self.expected = consult_id
        self.count = sum(consult_id in seen for seen in self.seen)
        if self.count == self.active:
            self.done.set()

    def on_consult(self, index: int, at: float, consult_id: int) -> None:
        if not self.armed or index >= self.active:
            return
        seen = self.seen[index]
        if consult_id in seen:
            return
        seen[consult_id] = at
        if consult_id == self.expected:
            self.count += 1
            if self.count == self.active:
                self.done.set()

    def times(self) -> list[float]:
        return [s[self.expected] for s in self.seen if self.expected in s]

    def foreign(self) -> set[int]:
        return {i for seen in self.seen for i in seen if i != self.expected}


CONSULT_ID = re.compile(r'42\["consult",\{"id": ?(\d+)[,}]')


def consult_id_of(message: str) -> int:
    """The consult's id: its first key, as ConsultSchema dumps it (else: parse all)."""
    match = CONSULT_ID.match(message)
    return int(match[1]) if match else json.loads(message[2:])[1]["id"]


class LiveClient(asyncio.Protocol):
    """One Socket.IO client on the websocket transport: connects, answers pings,
    and notes the arrival time (time.monotonic) of every `consult` event."""

    def __init__(self, index: int, hub: Hub, port: int, token: str):
        self.index = index
        self.hub = hub
        self.port = port
        self.token = token
        self.transport = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.connected = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data):
        at = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[: end + 4]
            if b" 101 " not in status:
                self.fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.upgraded = True
        buf = self.buffer
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                offset = 10
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            self.on_frame(first & 0x80, first & 0x0F, payload, at)

    def on_frame(self, fin: int, opcode: int, payload: bytes, at: float) -> None:
        if opcode in (0x0, 0x1):  # continuation, text
            self.fragments.append(payload)
            if fin:
                message = b"".join(self.fragments).decode()
                self.fragments = []
                self.on_message(message, at)
        elif opcode == 0x8:  # close
            self.transport.close()
        elif opcode == 0x9:  # websocket ping
            self.transport.write(mask_frame(payload.decode(), opcode=0xA))

    def on_message(self, message: str, at: float) -> None:
        if message.startswith('42["consult",'):
            self.hub.on_consult(self.index, at, consult_id_of(message))
        elif message == "2":  # Engine.IO ping
            self.transport.write(mask_frame("3"))
        elif message.startswith("0{"):  # Engine.IO open: now the Socket.IO connect
            self.transport.write(mask_frame("40" + json.dumps({"token": self.token})))
        elif message.startswith("40"):
            if not self.connected.done():
                self.connected.set_result(True)
        elif message.startswith("44"):
            self.fail(f"connection refused: {message[2:]}")

    def fail(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(reason))
        self.transport.close()

    def connection_lost(self, exc):
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"connection lost: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HttpResponse(asyncio.Protocol):
    """One HTTP/1.1 request; the arrival time is the moment its last byte arrived."""

    def __init__(self, request: bytes):
        self.request = request
        self.buffer = bytearray()
        self.result = asyncio.get_running_loop().create_future()
        self.header_end = -1
        self.length = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        at = time.monotonic()
        self.buffer += data
        if self.header_end < 0:
            self.header_end = self.buffer.find(b"\r\n\r\n")
            if self.header_end < 0:
                return
            for line in bytes(self.buffer[: self.header_end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.length = int(value)
        if (
            self.length is not None
            and len(self.buffer) >= self.header_end + 4 + self.length
            and not self.result.done()
        ):
            self.result.set_result((at, bytes(self.buffer)))
            self.transport.close()

    def connection_lost(self, exc):
        if not self.result.done():
            self.result.set_exception(ConnectionError(f"no full response: {exc}"))


async def post(port: int, path: str, body: dict, token: str | None) -> tuple:
    """POST body as JSON; returns (status, parsed body, sent at, response at)."""
    data = json.dumps(body).encode()
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Connection: close",
    ]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + data
    loop = asyncio.get_running_loop()
    sent_at = time.monotonic()
    _, protocol = await loop.create_connection(
        lambda: HttpResponse(request), "127.0.0.1", port
    )
    at, raw = await asyncio.wait_for(protocol.result, 30)
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload) if payload else None, sent_at, at


async def connect_clients(
    clients: list, hub: Hub, ports: list, tokens: list, upto: int
) -> None:
    """Connect clients len(clients)..upto-1, client i to ports[i % len(ports)]."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(i: int) -> LiveClient:
        async with gate:
            port = ports[i % len(ports)]
            _, client = await loop.create_connection(
                lambda: LiveClient(i, hub, port, tokens[i]), "127.0.0.1", port
            )
            await asyncio.wait_for(client.connected, 60)
            return client

    start = len(clients)
    clients.extend(await asyncio.gather(*(one(i) for i in range(start, upto))))


# --- measurement ----------------------------------------------------------------


def percentile(samples: list[float], q: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


class Target:
    """One configuration under measurement: its servers, clients and samples."""

    def __init__(self, name: str, servers: list, path: str, token: str | None):
        self.name = name
        self.servers = servers
        self.path = path
        self.token = token
        self.hub = Hub()
        self.clients: list = []
        self.reset()

    def reset(self) -> None:
        self.per_delivery: list[float] = []
        self.all_have: list[float] = []
        self.from_request: list[float] = []
        self.http_ms: list[float] = []
        self.failures: list[str] = []
        self.foreign: list[str] = []
        self.cpu_ms: list[float] = []  # the workers' CPU per action, all clients served

    async def action(self, n: int, record: bool) -> None:
        """One action; waits until all n clients have its event (or times out)."""
        hub = self.hub
        hub.arm(n)
        port = self.servers[0].port
        cpu_before = sum(cpu_seconds(server) for server in self.servers)
        status, consult, sent_at, response_at = await post(
            port, self.path, ACTION_BODY, self.token
        )
        if status != 201:
            raise RuntimeError(f"{self.path} answered {status}: {consult}")
        hub.expect(consult["id"])
        try:
            await asyncio.wait_for(hub.done.wait(), EVENT_TIMEOUT_S)
        except TimeoutError:
            self.failures.append(f"only {hub.count}/{n} had consult {consult['id']}")
        hub.armed = False
        await asyncio.sleep(0.05)  # the worker's last writes after the last delivery
        cpu = sum(cpu_seconds(server) for server in self.servers) - cpu_before
        foreign = hub.foreign()
        if foreign:
            self.foreign.append(
                f"consult(s) {sorted(foreign)[:5]} arrived during the action on "
                f"consult {consult['id']} (ignored)"
            )
        if record:
            got = hub.times()
            self.per_delivery += [(t - response_at) * 1000 for t in got]
            if len(got) == n:
                self.all_have.append((max(got) - response_at) * 1000)
                self.from_request.append((max(got) - sent_at) * 1000)
            self.http_ms.append((response_at - sent_at) * 1000)
            self.cpu_ms.append(cpu * 1000)

    def summary(self) -> dict:
        nan = float("nan")
        per, every, req = (
            sorted(self.per_delivery),
            sorted(self.all_have),
            sorted(self.from_request),
        )
        return {
            "p50": percentile(per, 50),
            "p99": percentile(per, 99),
            "all_p50": percentile(every, 50) if every else nan,
            "all_p99": percentile(every, 99) if every else nan,
            "req_p50": percentile(req, 50) if req else nan,
            "req_p99": percentile(req, 99) if req else nan,
            "http_p50": statistics.median(self.http_ms),
            "http_max": max(self.http_ms),
            "actions": len(every),
            "cpu_ms": statistics.mean(self.cpu_ms) if self.cpu_ms else nan,
            "failures": self.failures,
            "foreign": self.foreign,
        }


async def run_side_by_side(targets: list[Target], data: dict, args) -> dict:
    """Start the targets' servers; at each size connect the same number of clients
    to each, then take turns: one action on each target (in alternating order),
    `args.pause` apart, so that the machine's background weighs on all alike.
    In one piece on purpose: the alternation is the method, and reads in one place."""
    results: dict = {t.name: {} for t in targets}
    try:
        for target in targets:
            for server in target.servers:
                server.start()
        await asyncio.sleep(1.0)
        idle_rss = {t.name: sum(rss_kb(s) for s in t.servers) for t in targets}
        for n in args.sizes:
            for target in targets:
                started = time.monotonic()
                ports = [server.port for server in target.servers]
                await connect_clients(
                    target.clients, target.hub, ports, data["tokens"], n
                )
                print(
                    f"  {target.name}: {n} clients connected in "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
                target.reset()
            await asyncio.sleep(1.0)  # let the connection burst settle
            rss = {t.name: sum(rss_kb(s) for s in t.servers) for t in targets}
            load = os.getloadavg()[0]
            for k in range(args.warmup + args.actions):
                order = targets if k % 2 == 0 else targets[::-1]
                for target in order:
                    await target.action(n, record=k >= args.warmup)
                    await asyncio.sleep(args.pause)
            for target in targets:
                result = target.summary()
                result["load"] = (load, os.getloadavg()[0])
                result["rss_kb"] = rss[target.name]
                result["kb_per_client"] = (rss[target.name] - idle_rss[target.name]) / n
                results[target.name][n] = result
                print(
                    f"  {target.name:<8} N={n:>5}: all-have-it from response p50 "
                    f"{result['all_p50']:6.1f} p99 {result['all_p99']:6.1f} ms; "
                    f"from request p50 {result['req_p50']:6.1f} p99 "
                    f"{result['req_p99']:6.1f} ms; HTTP p50 {result['http_p50']:.1f}"
                    f" max {result['http_max']:.1f} ms; load {load:.1f}",
                    flush=True,
                )
                print(
                    f"  {target.name:<8} N={n:>5}: worker CPU {result['cpu_ms']:.1f} ms "
                    f"per action; RSS {result['rss_kb'] / 1024:.0f} MB, "
                    f"{result['kb_per_client']:.1f} KB per connected client",
                    flush=True,
                )
                for failure in result["failures"][:5]:
                    print(f"    FAILED: {failure}", flush=True)
                for note in result["foreign"][:5]:
                    print(f"    foreign event: {note}", flush=True)
    finally:
        for target in targets:
            for client in target.clients:
                client.close()
        await asyncio.sleep(0.2)
        for target in targets:
            for server in target.servers:
                server.stop()
    return results


# --- report ---------------------------------------------------------------------


def machine(database_url: str, redis_url: str) -> list[str]:
    packages = [
        "gunicorn",
        "Flask-SocketIO",
        "python-socketio",
        "python-engineio",
        "simple-websocket",
    ]
    if importlib.util.find_spec("gevent") is not None:
        packages += ["gevent", "greenlet"]
    return benchdb.machine_with_servers(
        database_url, redis_url, packages, redis_optional=True
    )


# name: (floor or broker, processes, async mode); the table's rows in this order.
CONFIGURATIONS = {
    "floor1": ("floor", 1, "threading"),
    "broker1": ("broker", 1, "threading"),
    "floor1g": ("floor", 1, "gevent"),
    "broker1g": ("broker", 1, "gevent"),
    "floor2": ("floor", 2, "threading"),
    "broker2": ("broker", 2, "threading"),
    "floor2g": ("floor", 2, "gevent"),
    "broker2g": ("broker", 2, "gevent"),
}


def describe(name: str) -> str:
    kind, processes, mode = CONFIGURATIONS[name]
    text = "floor: bare python-socketio" if kind == "floor" else "broker"
    text += ", 1 process" if processes == 1 else f", {processes} processes + Redis"
    return text + (", gevent" if mode == "gevent" else "")


LABELS = {name: describe(name) for name in CONFIGURATIONS}
FLOOR_OF = {
    name: name.replace("broker", "floor")
    for name, (kind, _, _) in CONFIGURATIONS.items()
    if kind == "broker"
}
# each gevent configuration and its threading counterpart
THREADING_OF = {
    name: name[:-1] for name, (_, _, mode) in CONFIGURATIONS.items() if mode == "gevent"
}


def ratio(value: float, base: float) -> str:
    if value <= 0:
        return "≤ 0"
    return f"{value / base:.2f}×" if base > 0 else "n/a"


def verdict(r: dict, base: dict, key: str) -> tuple[bool, str]:
    met = r[key] < GOAL_P99_MS and r[key] <= GOAL_RATIO * base[key]
    met = met and not r["failures"]
    text = (
        f"{r[key]:.1f} ms (goal < {GOAL_P99_MS:.0f}), {ratio(r[key], base[key])} "
        f"the floor's {base[key]:.1f} ms (goal ≤ {GOAL_RATIO}×)"
    )
    return met, text


def report(
    results: dict, args, machine_lines: list[str], tracebacks: list[tuple[str, str]]
) -> None:
    """Prints the run's tables in the order bench/README.md quotes them. Longer than 60
    lines on purpose: one straight sequence of tables reads (and diffs against
    the README) more easily than pieces."""
    print()
    print(
        "Milliseconds. 'from response': from the moment the action's HTTP response "
        "arrived; 'from request': from the moment it was sent. 'all' = the moment "
        "the last of the N clients had the event."
    )
    print(
        "| configuration | N | per client p50 | per client p99 | all p50 | all p99 "
        "| all p99 ÷ floor | all p50, from request | all p99, from request "
        "| ÷ floor | action's HTTP p50 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, label in LABELS.items():
        floor = results.get(FLOOR_OF.get(name, ""), {})
        for n, r in results.get(name, {}).items():
            base = floor.get(n)
            all_ratio = ratio(r["all_p99"], base["all_p99"]) if base else "–"
            req_ratio = ratio(r["req_p99"], base["req_p99"]) if base else "–"
            print(
                f"| {label} | {n:,} | {r['p50']:.1f} | {r['p99']:.1f} |"
                f" {r['all_p50']:.1f} | {r['all_p99']:.1f} | {all_ratio} |"
                f" {r['req_p50']:.1f} | {r['req_p99']:.1f} | {req_ratio} |"
                f" {r['http_p50']:.1f} |"
            )
    print()
    print(
        "Worker CPU per push: the CPU of an action at N clients less that at the "
        "smallest N (the broker's action also creates the consult; the floor's only "
        "asks for the broadcast). Memory: the workers' RSS growth per connected client."
    )
    print(
        "| configuration | N | CPU ms per action | push CPU ms | ÷ floor | KB per client |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in LABELS.items():
        runs = results.get(name, {})
        floor = results.get(FLOOR_OF.get(name, ""), {})
        for n, r in runs.items():
            push = r["cpu_ms"] - runs[min(runs)]["cpu_ms"]
            base = floor.get(n)
            floor_push = base and base["cpu_ms"] - floor[min(floor)]["cpu_ms"]
            share = ratio(push, floor_push) if base and n != min(runs) else "–"
            print(
                f"| {label} | {n:,} | {r['cpu_ms']:.1f} | {push:.1f} | {share} "
                f"| {r['kb_per_client']:.1f} |"
            )
    print()
    for name in FLOOR_OF:
        r = results.get(name, {}).get(GOAL_CLIENTS)
        base = results.get(FLOOR_OF[name], {}).get(GOAL_CLIENTS)
        if not r or not base:
            continue
        for key, how in (("all_p99", "from response"), ("req_p99", "from request")):
            met, text = verdict(r, base, key)
            print(
                f"goal at {GOAL_CLIENTS} clients, {LABELS[name]}, all p99 {how}: "
                f"{text}: {'MET' if met else 'NOT MET'}"
            )
    compared = False
    for name, threading_name in THREADING_OF.items():
        for n, r in results.get(name, {}).items():
            base = results.get(threading_name, {}).get(n)
            if not base:
                continue
            if not compared:
                print()
                compared = True
            print(
                f"gevent vs threading, {LABELS[threading_name]}, N={n:,}: "
                f"all from request p50 {base['req_p50']:.1f} -> {r['req_p50']:.1f} ms "
                f"({ratio(r['req_p50'], base['req_p50'])}), p99 "
                f"{base['req_p99']:.1f} -> {r['req_p99']:.1f} ms "
                f"({ratio(r['req_p99'], base['req_p99'])}); HTTP p50 "
                f"{base['http_p50']:.1f} -> {r['http_p50']:.1f} ms"
            )
    failures = [
        (name, n)
        for name, by_n in results.items()
        for n, r in by_n.items()
        if r["failures"]
    ]
    if failures:
        print(f"configurations with failed deliveries: {failures}")
    foreign = {
        (name, n): len(r["foreign"])
        for name, by_n in results.items()
        for n, r in by_n.items()
        if r["foreign"]
    }
    if foreign:
        print(
            "actions during which clients also received a consult event that was "
            f"not theirs (ignored, not timed): {foreign}"
        )
    print()
    print(
        f"{args.actions} measured actions per row after {args.warmup} warm-up ones, "
        f"{args.pause * 1000:.0f} ms apart; per client p50/p99 over all deliveries "
        "(negative: the event arrived before the response)."
    )
    print(f"tracebacks in the server logs: {len(tracebacks)}")
    for where, text in tracebacks[:3]:
        print(f"--- {where}:\n{text}")
    loads = [r["load"] for by_n in results.values() for r in by_n.values()]
    if loads:
        low = min(min(pair) for pair in loads)
        high = max(max(pair) for pair in loads)
        print(
            f"1-minute load average around the measurements: {low:.1f} to {high:.1f} "
            f"(on {os.cpu_count()} cores; above it, other work shared the machine)"
        )
    print("Machine:")
    for line in machine_lines:
        print(f"  {line}")


def main() -> int:
    """The benchmark's steps from the command line to the report, in the order they
    run. Longer than 60 lines on purpose: the order of the steps is the method
    bench/README.md describes, and reads best in one place."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        required=True,
        help="a dedicated PostgreSQL database: it is WIPED",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="client counts, ascending"
    )
    parser.add_argument("--actions", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds")
    parser.add_argument(
        "--async-modes",
        default="threading",
        help="run the configurations of these Socket.IO async modes, of "
        f"{','.join(ASYNC_MODES)} (gevent: pip install gevent first)",
    )
    parser.add_argument(
        "--only",
        help=f"configurations to run, of {','.join(LABELS)} (overrides "
        "--async-modes; default: every configuration of --async-modes)",
    )
    parser.add_argument(
        "--log-dir", help="keep the servers' logs in this directory (default: not kept)"
    )
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    modes = args.async_modes.split(",")
    if unknown := set(modes) - set(ASYNC_MODES):
        parser.error(f"unknown async mode(s) {sorted(unknown)}, of {ASYNC_MODES}")
    if args.only:
        wanted = args.only.split(",")
        if unknown := set(wanted) - set(CONFIGURATIONS):
            parser.error(f"unknown configuration(s) {sorted(unknown)}")
    else:
        wanted = [n for n, (_, _, mode) in CONFIGURATIONS.items() if mode in modes]
    gevent_wanted = any(CONFIGURATIONS[name][2] == "gevent" for name in wanted)
    if gevent_wanted and importlib.util.find_spec("gevent") is None:
        parser.error(
            "gevent is not installed: `pip install gevent==25.9.1` into this "
            "environment (not in requirements.txt) to run the gevent configurations"
        )
    began = time.monotonic()

    # Each client and each websocket on the server side is a file descriptor.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16_384)), hard))

    members = max(args.sizes)
    benchdb.ensure_database(args.database_url)
    benchdb.reset_schema(args.database_url)
    benchdb.migrate(args.database_url)
    started = time.monotonic()
    data = seed(args.database_url, members)
    print(f"seeded {members} members with tokens in {time.monotonic() - started:.1f} s")

    machine_lines = machine(args.database_url, args.redis_url)
    results: dict = {}
    tracebacks: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="livebench-") as tmp:
        logdir = Path(args.log_dir or tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        payload_path = logdir / "payload.json"
        payload_path.write_text(json.dumps(data["payload"]))
        print(f"payload: {len(json.dumps(data['payload']))} bytes of consult JSON")
        env = dict(
            os.environ,
            DATABASE_URL=args.database_url,
            SWEEP_INTERVAL_SECONDS="0",
            SECRET_KEY="bench",
        )
        env.pop("REDIS_URL", None)
        floor_args = ("--pythonpath", str(ROOT / "bench"))
        one = members + EXTRA_THREADS  # threads: one per websocket, and some
        half = (members + 1) // 2 + EXTRA_THREADS

        def channel(name: str) -> str:
            # Redis pub/sub ignores the database number: configurations running
            # together (broker2 and broker2g), other runs and other deployments on
            # the same Redis must not hear each other's pushes.
            return f"livebench-{name}-{os.getpid()}"

        def servers(name: str) -> list[ServerProcess]:
            kind, processes, mode = CONFIGURATIONS[name]
            if kind == "floor":
                app, extra = FLOOR_APP, floor_args
                server_env = dict(
                    env, LIVEBENCH_PAYLOAD=str(payload_path), LIVEBENCH_ASYNC_MODE=mode
                )
                if processes > 1:
                    server_env["LIVEBENCH_REDIS_URL"] = args.redis_url
                    server_env["LIVEBENCH_REDIS_CHANNEL"] = channel(name)
            else:
                app, extra = "wsgi:app", ()
                server_env = dict(env, SOCKETIO_ASYNC_MODE=mode)
                if processes > 1:
                    server_env["REDIS_URL"] = args.redis_url
                    server_env["SOCKETIO_CHANNEL"] = channel(name)
            names = (
                [name] if processes == 1 else [f"{name}-{i}" for i in range(processes)]
            )
            threads = one if processes == 1 else half
            return [
                gunicorn_server(
                    server_name,
                    app,
                    server_env,
                    logdir,
                    mode,
                    connections=threads
                    if mode == "gevent"
                    else threads + EXTRA_THREADS,
                    threads=threads,
                    graceful_timeout=3,
                    extra=extra,
                    ready_path="/socket.io/?EIO=4&transport=polling",
                )  # fmt: skip
                for server_name in names
            ]

        # Side by side: every selected configuration of a process count at once.
        groups = [
            [n for n in CONFIGURATIONS if CONFIGURATIONS[n][1] == processes]
            for processes in (1, 2)
        ]
        for group in groups:
            names = [name for name in group if name in wanted]
            if not names:
                continue
            if len(names) <= 2:
                print(" side by side with ".join(LABELS[name] for name in names) + ":")
            else:
                print("side by side: " + "; ".join(LABELS[n] for n in names) + ":")
            targets = [
                Target(
                    name,
                    servers(name),
                    *(
                        ("/broadcast", None)
                        if name.startswith("floor")
                        else ("/api/consults", data["requester_token"])
                    ),
                )
                for name in names
            ]
            try:
                results.update(asyncio.run(run_side_by_side(targets, data, args)))
            except Exception:
                for target in targets:
                    for server in target.servers:
                        print(f"--- {server.log_path.name} (tail)")
                        lines = server.log_path.read_text().splitlines(True)
                        print("".join(lines[-20:]))
                raise
            for target in targets:
                for server in target.servers:
                    found = server.tracebacks()
                    tracebacks += [(server.log_path.name, text) for text in found]
                    if found:
                        print(f"  {server.name}: {len(found)} traceback(s) in its log")
        if not gevent_wanted:
            hint = "--async-modes threading,gevent runs it side by side"
            if importlib.util.find_spec("gevent") is None:
                hint += (
                    " once gevent is installed (pip install gevent==25.9.1; "
                    "requirements.txt is not changed for a benchmark)"
                )
            print(f"gevent mode was not measured: {hint}.")
    report(results, args, machine_lines, tracebacks)
    print(f"\ntotal time {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
