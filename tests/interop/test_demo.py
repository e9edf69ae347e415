"""`callrouter demo` as a user runs it: the example organisation, a pyVoIP call to the main
number, 1 pressed in-band, and the sales person's phone answering."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.interop.conftest import require_module
from tests.server import ROOT

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def test_demo_reaches_the_sales_person():
    require_module("pyVoIP", "install pyVoIP==1.6.8 (pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "callrouter", "demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=110)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [line.split()[1] for line in out.splitlines() if line.startswith("[")]
    assert steps[:2] == ["server", "server"] and steps[-1] == "done"
    assert "the auto attendant answers" in out and "presses 1" in out
    assert "Sam Sales answered the call from the main menu" in out
    greeting = next(line for line in out.splitlines() if "hears" in line)
    level = float(greeting.split(" at ")[1].split()[0])
    assert level > -40, greeting  # a real greeting, not silence
