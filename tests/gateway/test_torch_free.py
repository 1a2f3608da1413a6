"""The gateway is a producer-side room: importing it, and building its app, never imports torch."""

import subprocess
import sys


def test_the_gateway_is_torch_free():
    code = (
        "import sys; from gateway.app import create_app; create_app(); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
