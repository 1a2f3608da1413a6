"""A Batches tab in Flower: the Batch API's running batches and their progress (done, failed, in flight,
tokens, ETA), read from Redis each time the page is asked for, as `inferq status` and the gateway's
`/metrics` read them, so any Flower of the fleet shows every batch.

Flower has no plugin interface. `celery flower` builds its app from two objects of `flower.urls`, its
routes and its settings, after the app module (tasks/monitor.py) is imported: `install` adds this page's
routes ahead of Flower's catch-all and gives the app a template loader that serves Flower's templates, with
a Batches tab added to its navigation bar, and this page's own. Flower's authentication applies to both
routes as to its own pages and API.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flower import urls as flower_urls
from flower.api import BaseApiHandler
from flower.views import BaseHandler
from tornado import template, web

from tasks.batch_store import BatchInfo
from tasks.config import QueueSettings
from tasks.store import JobStore

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
TAB = """<li class="nav-item">
          <a class="nav-link{% if active_tab == 'batches' %} active{% end %}" href="{{ reverse_url('batches') }}"
            {% if active_tab == 'batches' %}aria-current="page"{% end %}>Batches</a>
        </li>
      """


class RunningBatches:
    """The Flower process's one reader of batch progress; its Redis pool opens on first use, on Flower's
    event loop."""

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._store: JobStore | None = None

    async def read(self) -> list[BatchInfo]:
        if self._store is None:
            self._store = JobStore.open(self._settings)
        return await self._store.batches.running()


class BatchesView(BaseHandler):
    def initialize(self, batches: RunningBatches) -> None:
        self._batches = batches

    @web.authenticated
    async def get(self) -> None:
        self.render("batches.html", batches=await self._batches.read(), now=time.time(), eta=_eta)


class BatchesApi(BaseApiHandler):
    def initialize(self, batches: RunningBatches) -> None:
        self._batches = batches

    @web.authenticated
    async def get(self) -> None:
        self.write({"batches": [batch.model_dump(mode="json") for batch in await self._batches.read()]})


class FlowerTemplates(template.Loader):
    """Flower's templates, its navigation bar with the Batches tab added to its first list of tabs, and
    the templates of this package (looked up first)."""

    def resolve_path(self, name: str, parent_path: str | None = None) -> str:
        ours = os.path.join(TEMPLATES, name)
        return ours if os.path.exists(ours) else name  # relative names are read under Flower's directory

    def _create_template(self, name: str) -> template.Template:
        if name != "navbar.html":
            return super()._create_template(name)
        with open(os.path.join(self.root, name), encoding="utf-8") as navbar:
            source = navbar.read()
        # Flower's markup without a tab list (a future version) keeps its bar as it is: the page is still there.
        return template.Template(source.replace("</ul>", TAB + "</ul>", 1), name=name, loader=self)


def install(settings: QueueSettings) -> None:
    batches = RunningBatches(settings)
    routes: list[Any] = [
        web.url(r"/batches", BatchesView, {"batches": batches}, name="batches"),
        (r"/api/batches", BatchesApi, {"batches": batches}),
    ]
    handlers = flower_urls.handlers
    catch_all = next((i for i, route in enumerate(handlers) if _pattern(route) == ".*"), len(handlers))
    handlers[catch_all:catch_all] = routes
    flower_urls.settings["template_loader"] = FlowerTemplates(flower_urls.settings["template_path"])


def _pattern(route: Any) -> str:
    return route.regex.pattern.rstrip("$") if isinstance(route, web.URLSpec) else route[0]


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
