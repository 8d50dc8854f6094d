"""The core SDK never imports a framework: integrations depend on it, not the reverse."""

from __future__ import annotations

import subprocess
import sys


def test_import_seal_agent_pulls_no_langchain():
    code = (
        "import sys, seal_agent, seal_agent.agent, seal_agent.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('langchain')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
