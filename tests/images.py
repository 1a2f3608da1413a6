"""Small real images for the tests that send one: PNG bytes and their data URL."""

import base64
import io

from PIL import Image


def png(size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png()
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
