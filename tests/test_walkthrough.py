"""The README's curl walk-through, run as written against a real server with the demo loaded."""

import subprocess

from helpers import WHOLE_STORY

from broker.cli import demo


def test_readme_walkthrough_runs_a_consult_through_its_whole_life(
    app, live_server_process
):
    assert app.test_cli_runner().invoke(demo).exit_code == 0

    result = subprocess.run(
        ["bash", "docs/walkthrough.sh", live_server_process.url],
        cwd=app.root_path + "/..",
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    timeline = result.stdout.split("9. The whole timeline, oldest first")[1]
    kinds = [line.split()[1] for line in timeline.strip().splitlines()]
    assert kinds == WHOLE_STORY
    assert "claimed, owner Dr. Chloe Nguyen" in result.stdout
