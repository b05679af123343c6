"""Benchmark: a wrong sign-in takes as long for an unknown e-mail as for a real account.

Through the API (`POST /api/tokens`, in process, on a fresh SQLite file), with the
production hash (scrypt at Werkzeug's default cost): wrong passwords for an existing
account and for unknown e-mails, interleaved. Goal: the medians within 10 % of each
other, so the time taken does not tell which e-mails have accounts.

    python bench/sign_in.py [--attempts 40]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from broker import accounts, create_app  # noqa: E402
from broker.extensions import db  # noqa: E402

GOAL = 0.10  # the largest relative difference of the medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=40, help="of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signinbench-") as tmp:
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
                "SECRET_KEY": "bench",
                "SWEEP_INTERVAL_SECONDS": 0,
                "RATELIMIT_ENABLED": False,  # measured here: the check, not the limits
            }
        )
        with app.app_context():
            db.create_all()
            accounts.create_user("known@bench.test", "Known", "the right password")
        client = app.test_client()
        times = {"existing account": [], "unknown e-mail": []}
        for n in range(args.attempts):
            pair = [
                ("existing account", "known@bench.test"),
                ("unknown e-mail", f"nobody{n}@bench.test"),
            ]
            for kind, email in pair if n % 2 else reversed(pair):
                started = time.perf_counter()
                status = client.post(
                    "/api/tokens", json={"email": email, "password": "a wrong guess"}
                ).status_code
                times[kind].append(time.perf_counter() - started)
                assert status == 401, status
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    for kind, values in times.items():
        print(
            f"{kind:17}: median {medians[kind] * 1000:6.1f} ms, "
            f"min {min(values) * 1000:6.1f}, max {max(values) * 1000:6.1f} "
            f"({len(values)} attempts)"
        )
    known, unknown = medians.values()
    difference = abs(known - unknown) / known
    met = difference <= GOAL
    print(f"difference of the medians: {difference:.1%} (goal <= {GOAL:.0%}): ", end="")
    print("met" if met else "NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
