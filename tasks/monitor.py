"""The app monitors load: `celery -A tasks.monitor flower`, `celery -A tasks.monitor inspect active`.

Torch-free and task-free: monitors only read events and talk to workers over the broker. Where Flower is
installed, its app gets a Batches tab (tasks/flower_batches.py) before `celery flower` builds it.
"""

import importlib.util

from tasks.app import make_app
from tasks.config import QueueSettings

settings = QueueSettings()
app = make_app(settings)

if importlib.util.find_spec("flower") is not None:
    from tasks.flower_batches import install

    install(settings)
