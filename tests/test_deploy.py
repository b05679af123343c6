"""The deployment of docs/deployment.md, run as shipped: nginx, TLS, two processes, PostgreSQL, Redis.

nginx runs the repository's own docs/nginx.conf with only the values it lists as
settings changed (ports, server name, certificate paths, access log, the processes'
addresses), over TLS with a throw-away certificate made by the documented openssl
command, in front of two processes started by the ExecStart of
docs/systemd/broker@.service (`make serve`), after `make migrate`, sharing one
PostgreSQL database and Redis. Through it a real browser signs in, sends a consult
with a form and sees live what the other process saves; one process is killed and
the browser carries on through the other; a polling-only Socket.IO client is kept on
its process by the proxy's cookie. The backup and restore commands run too. Every
command taken from docs/deployment.md is checked to be written there as run here.

Needs PostgreSQL (TEST_DATABASE_URL), Redis (TEST_REDIS_URL), nginx (/usr/sbin/nginx),
openssl and Chromium; each missing one skips with its reason (CI installs them all).
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
import socketio
from conftest import NEW_CONSULT, POSTGRES_URL
from helpers import ROOT, free_port
from sqlalchemy.engine import make_url

from broker.config import normalise_database_url

NGINX = Path("/usr/sbin/nginx")
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
DOCS = ROOT / "docs"
DEPLOYMENT_MD = (DOCS / "deployment.md").read_text()
WAIT = 60.0  # seconds: only a limit (start-up, migrations)
LIVE = 10_000  # ms: only a limit on waiting for a live change (a failover included)
DEMO_PASSWORD = "consult-demo"
HSTS = "max-age=31536000"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        not NGINX.exists(), reason=f"needs nginx at {NGINX} (apt-get install nginx)"
    ),
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set TEST_REDIS_URL"),
    pytest.mark.skipif(
        not Path("/usr/bin/openssl").exists(), reason="needs openssl for a certificate"
    ),
]


def documented(command: str) -> str:
    """A command as docs/deployment.md gives it to the operator (this test runs it)."""
    assert command in DEPLOYMENT_MD, f"docs/deployment.md does not say: {command}"
    return command


def run(command: str, env: dict, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=WAIT,
    )  # fmt: skip
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def exec_start(unit: str) -> str:
    """The ExecStart line of one of docs/systemd/'s units, %-escapes undone."""
    text = (DOCS / "systemd" / unit).read_text()
    line = re.search(r"^ExecStart=(.+)$", text, re.MULTILINE).group(1)
    return line.replace("%%", "%")


@pytest.fixture
def database():
    """A database of its own, created empty for the test (and a second for restores)."""
    server = make_url(normalise_database_url(POSTGRES_URL))
    names = [f"broker_deploy_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = server.set(drivername="postgresql", database="postgres")
    admin_url = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        for name in names:
            connection.execute(f'CREATE DATABASE "{name}"')
    urls = [
        server.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False
        )
        for name in names
    ]
    yield urls
    with psycopg.connect(admin_url, autocommit=True) as connection:
        for name in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Backend:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """As a crash would: no goodbye to its clients."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=WAIT)


@dataclass
class Deployment:
    url: str  # https://localhost:<port>, through nginx
    http_url: str  # the plain-HTTP port, which only redirects
    backends: list[Backend]
    env: dict
    tmp: Path

    @property
    def certificate(self) -> str:
        """The throw-away certificate, which clients here trust (browsers are told to)."""
        return str(self.tmp / "broker.crt")

    def nginx_access_log(self) -> str:
        return (self.tmp / "nginx-access.log").read_text()

    def token(self, email: str, via: str | None = None) -> str:
        response = requests.post(
            (via or self.url) + "/api/tokens",
            json={"email": email, "password": DEMO_PASSWORD},
            verify=self.certificate,
            timeout=WAIT,
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def new_consult(self, via: Backend, **fields) -> int:
        """A consult sent by Dr Patel straight to one process (not through nginx)."""
        response = requests.post(
            via.url + "/api/consults",
            json={**NEW_CONSULT, **fields},
            headers={"Authorization": f"Bearer {self.token('patel@demo.test')}"},
            timeout=WAIT,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


def rendered_nginx_conf(settings: dict[str, str]) -> str:
    """docs/nginx.conf with the values it lists as settings (in its header) replaced."""
    config = (DOCS / "nginx.conf").read_text()
    header = config.split("\nupstream ")[0]
    for shipped, value in settings.items():
        assert shipped in header, (
            f"docs/nginx.conf does not list {shipped} as a setting"
        )
        assert config.count(shipped) > 1, f"docs/nginx.conf does not use {shipped}"
        config = config.replace(shipped, value)
    return config


def wait_until_healthy(backend: Backend) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if requests.get(backend.url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if backend.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"process on {backend.port} did not start:\n{backend.log()}"
            )
        time.sleep(0.2)


def start_nginx(tmp: Path, ports: dict, backends: list[Backend]) -> subprocess.Popen:
    """nginx with the shipped file in an http {} block, as Debian's nginx.conf includes it."""
    run(documented(CERTIFICATE), {**os.environ, "BROKER_HOST": "localhost"}, cwd=tmp)
    settings = {
        "listen 80;": f"listen 127.0.0.1:{ports['http']};",
        "listen 443 ssl;": f"listen 127.0.0.1:{ports['https']} ssl;",
        "server_name broker.hospital.example;": "server_name localhost;",
        "ssl_certificate /etc/ssl/broker/broker.crt;": f"ssl_certificate {tmp}/broker.crt;",
        "ssl_certificate_key /etc/ssl/broker/broker.key;": (
            f"ssl_certificate_key {tmp}/broker.key;"
        ),
        "access_log /var/log/nginx/broker.access.log broker;": (
            f"access_log {tmp}/nginx-access.log broker;"
        ),
        "127.0.0.1:8001": f"127.0.0.1:{backends[0].port}",
        "127.0.0.1:8002": f"127.0.0.1:{backends[1].port}",
    }
    (tmp / "broker.conf").write_text(rendered_nginx_conf(settings))
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {tmp}/nginx.pid;\n"
        "events { worker_connections 512; }\n"
        f"http {{\n{temp_paths}    include {tmp}/broker.conf;\n}}\n"
    )
    command = [str(NGINX), "-p", str(tmp), "-c", str(tmp / "nginx.conf")]
    error_log = ["-e", str(tmp / "nginx-error.log")]
    check = subprocess.run(
        [*command, *error_log, "-t"], capture_output=True, text=True, timeout=WAIT
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([*command, *error_log, "-g", "daemon off;"])
    deadline = time.monotonic() + WAIT
    while True:
        try:
            requests.get(
                f"https://localhost:{ports['https']}/",
                verify=str(tmp / "broker.crt"),
                timeout=2,
            )
            return process
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "nginx-error.log").read_text()) from None
            time.sleep(0.1)


CERTIFICATE = (
    'openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$BROKER_HOST" '
    '-addext "subjectAltName=DNS:$BROKER_HOST" -keyout broker.key -out broker.crt'
)
MIGRATE = "make migrate"
CREATE_ADMIN = (
    '.venv/bin/flask --app wsgi users create --email "$ADMIN_EMAIL" '
    '--name "$ADMIN_NAME" --password "$ADMIN_PASSWORD" --admin'
)
ADMIN = {
    "ADMIN_EMAIL": "it@deploy.test",
    "ADMIN_NAME": "Hospital IT",
    "ADMIN_PASSWORD": DEMO_PASSWORD,
}
HEALTH = "curl -fsS http://127.0.0.1:$PORT/healthz"
RESTORE = 'pg_restore --no-owner --exit-on-error --dbname="$DATABASE_URL" "$DUMP"'


@pytest.fixture
def deployment(database, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database[0],
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "TRUSTED_PROXIES": "1",
        "SWEEP_INTERVAL_SECONDS": "5",
    }
    run(documented(MIGRATE), env)
    run(documented(CREATE_ADMIN), {**env, **ADMIN})
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "demo"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=WAIT,
    )  # fmt: skip
    serve = exec_start("broker@.service")
    backends = []
    try:
        for _ in range(2):
            port = free_port()
            command = serve.replace("%i", str(port)).replace(
                "/run/", f"{tmp_path}/run/"
            )
            log_path = tmp_path / f"serve-{port}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    shlex.split(command), cwd=ROOT, env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            backends.append(Backend(port, process, log_path))
        for backend in backends:
            wait_until_healthy(backend)
        ports = {"http": free_port(), "https": free_port()}
        nginx = start_nginx(tmp_path, ports, backends)
        try:
            yield Deployment(
                url=f"https://localhost:{ports['https']}",
                http_url=f"http://localhost:{ports['http']}",
                backends=backends,
                env=env,
                tmp=tmp_path,
            )
        finally:
            nginx.terminate()
            nginx.wait(timeout=WAIT)
    finally:
        for backend in backends:
            backend.kill()
        for backend in backends:
            print(f"--- process {backend.port} (tail) ---\n{backend.log()[-3000:]}")


def received_ids(received: list, *expected: int) -> set:
    deadline = time.monotonic() + LIVE / 1000
    while not set(expected) <= {c["id"] for c in received}:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return {c["id"] for c in received} & set(expected)


def test_the_proxy_as_shipped_redirects_secures_balances_and_keeps_pollers_on_their_process(
    deployment,
):
    first, second = deployment.backends

    # Plain HTTP only redirects; HTTPS answers carry HSTS, once.
    redirect = requests.get(
        deployment.http_url + "/sign-in", allow_redirects=False, timeout=WAIT
    )
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == "https://localhost/sign-in"
    page = requests.get(
        deployment.url + "/sign-in", verify=deployment.certificate, timeout=WAIT
    )
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"] == HSTS
    assert page.headers["Referrer-Policy"] == "same-origin"

    # The administrator made by the documented command signs in through the proxy.
    assert deployment.token(ADMIN["ADMIN_EMAIL"])

    # Each process answers its health check, every part up.
    for backend in (first, second):
        answer = run(documented(HEALTH), {**deployment.env, "PORT": str(backend.port)})
        assert answer.strip() == (
            '{"database":"ok","redis":"ok","status":"ok","sweeper":"ok"}'
        )

    # A client that only long-polls: every request of its session must reach one process.
    received = []
    http = requests.Session()
    http.verify = deployment.certificate
    http.trust_env = False  # or REQUESTS_CA_BUNDLE would replace the certificate
    client = socketio.Client(http_session=http, reconnection=False)
    client.on("consult", received.append)
    client.connect(
        deployment.url,
        transports=["polling"],
        auth={"token": deployment.token("castillo@demo.test")},
        wait_timeout=WAIT,
    )
    try:
        stuck_to = {c.name: c.value for c in http.cookies}
        assert stuck_to.get("broker_backend") in ("p1", "p2")
        made = [deployment.new_consult(via=b) for b in (first, second, first, second)]
        assert received_ids(received, *made) == set(made)
    finally:
        client.disconnect()

    # Neither nginx's access log nor the processes' hold a query string.
    polled = [
        line
        for line in deployment.nginx_access_log().splitlines()
        if "/socket.io/" in line
    ]
    assert polled, deployment.nginx_access_log()
    for log in (deployment.nginx_access_log(), first.log(), second.log()):
        assert "sid=" not in log and "EIO=" not in log
    assert re.search(r'"POST /api/consults" 201 ', first.log())


def test_a_browser_through_the_proxy_signs_in_sends_sees_the_other_process_and_survives_a_crash(
    deployment,
):
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright
    from test_browser import CHROMIUM_ARGS, act, consult_id_of, live, row

    first, second = deployment.backends
    expect.set_options(timeout=LIVE)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            contexts = {}
            script_errors: list[str] = []
            for who in ("patel", "castillo"):
                context = browser.new_context(
                    base_url=deployment.url, ignore_https_errors=True
                )
                context.set_default_timeout(LIVE)
                context.on(
                    "page",
                    lambda page: page.on(
                        "pageerror", lambda error: script_errors.append(str(error))
                    ),
                )
                contexts[who] = context
            # The radiologist's live connection is stuck to the first process, as the
            # proxy's cookie would have it after a polling request answered there.
            contexts["castillo"].add_cookies(
                [{"name": "broker_backend", "value": "p1", "domain": "localhost",
                  "path": "/socket.io/", "secure": True, "httpOnly": True}]
            )  # fmt: skip

            def signed_in(who: str):
                page = contexts[who].new_page()
                page.goto("/sign-in")
                page.fill("#email", f"{who}@demo.test")
                page.fill("#password", DEMO_PASSWORD)
                page.click("#sign-in")
                page.wait_for_url(lambda url: "/sign-in" not in url)
                expect(page.locator("#sign-out")).to_be_visible()
                return page

            radiologist = signed_in("castillo")
            radiologist.goto("/queue/radiology")
            live(radiologist)
            radiologist.evaluate(
                "() => { window.__drops = 0;"
                " BrokerLive.socket.on('disconnect', () => window.__drops++); }"
            )

            # The physician sends a consult with the form, through the proxy.
            physician = signed_in("patel")
            physician.goto("/consults/new")
            physician.select_option("#department", "radiology")
            physician.check('input[name="urgency"][value="stat"]')
            physician.fill("#patient_ref", "MRN-DEPLOY-1")
            physician.fill("#question", "Through nginx: is the appendix normal?")
            act(physician, "#send-consult", re.compile(r"Consult #\d+ sent"))
            expect(row(radiologist, consult_id_of(physician))).to_be_visible()

            # Saved by the second process: pushed, through Redis, by the first.
            from_second = deployment.new_consult(via=second)
            expect(row(radiologist, from_second)).to_be_visible()

            # The first process dies; the page reconnects through the second ...
            first.kill()
            radiologist.wait_for_function("() => window.__drops >= 1")
            radiologist.wait_for_function("() => BrokerLive.socket.connected")
            after_crash = deployment.new_consult(via=second)
            expect(row(radiologist, after_crash)).to_be_visible()

            # ... and its forms keep working through the proxy.
            row(radiologist, after_crash).locator("a").click()
            radiologist.wait_for_url(f"**/consults/{after_crash}")
            act(radiologist, "#claim-button", "You own this consult now.")
            expect(radiologist.locator("#owner")).to_have_text("Dr. Ben Castillo")
        finally:
            browser.close()
    assert not script_errors, script_errors
    assert "Traceback" not in second.log()


def test_a_backup_restores_into_an_empty_database(deployment, database):
    """The nightly backup unit's command, then the documented restore, into another database."""
    backups = deployment.tmp / "backups"
    backups.mkdir()
    run(exec_start("broker-backup.service"), deployment.env, cwd=backups)
    (dump,) = backups.glob("broker-*.dump")

    restored = {**deployment.env, "DATABASE_URL": database[1], "DUMP": str(dump)}
    run(documented(RESTORE), restored, cwd=backups)
    run(documented(MIGRATE), restored)  # nothing to do: the dump is of this release

    def contents(url: str) -> list:
        with psycopg.connect(url) as connection:
            return [
                connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("users", "consults", "consult_events", "alembic_version")
            ]

    assert contents(database[1]) == contents(database[0])
    assert contents(database[1])[1] > 0
