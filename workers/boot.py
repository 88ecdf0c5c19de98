"""The module the ``dramatiq`` CLI imports in every worker process (``fulfillment
worker`` runs ``dramatiq workers.boot``): it is the worker's boot hook, so building the
broker, the engine and the gateways here happens once per worker process."""

import dramatiq

from fulfillment.heap import freeze_startup_heap
from fulfillment.logs import configure_logging
from fulfillment.settings import load_settings
from workers.wiring import build_deps, build_worker_broker

settings = load_settings()
configure_logging(settings.log_level)
broker = build_worker_broker(settings, build_deps(settings))
dramatiq.set_broker(broker)
freeze_startup_heap()
