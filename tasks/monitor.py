"""The app monitors load: `celery -A tasks.monitor flower`, `celery -A tasks.monitor inspect active`.

Torch-free and task-free: monitors only read events and talk to workers over the broker.
"""

from tasks.app import make_app

app = make_app()
