"""The daemon: config -> scheduler -> runner -> history + live counters -> /metrics.

SIGHUP reloads the config (a bad new config keeps the old one running and says why);
SIGTERM and SIGINT stop cleanly after a last flush.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from prometheus_client import CollectorRegistry

from monai_slo import systemd
from monai_slo.checks.base import CheckResult
from monai_slo.config import CheckRef, Config, parse_listen
from monai_slo.metrics import DaemonView, LiveCounters, SloCollector
from monai_slo.runner import CheckRunner
from monai_slo.scheduler import CheckScheduler
from monai_slo.server import MetricsServer
from monai_slo.store import HistoryStore
from monai_slo.yaml_source import SourceError

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        reload_config: Callable[[], Config] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reload_config = reload_config
        self.clock = clock
        self.store = HistoryStore(config.storage, retention=config.retention)
        self.counters = LiveCounters()
        self.runner = CheckRunner(config.workers, self._record, clock=clock)
        self.view = DaemonView(
            config,
            self.store,
            self.counters,
            skipped=lambda: dict(self.runner.skipped),
            clock=clock,
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SloCollector(self.view))
        self.scheduler = CheckScheduler(self.runner.submit)
        host, port = parse_listen(config.listen)
        self.server = MetricsServer(host, port, self.registry, ready=self._ready)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._wake = threading.Event()  # interrupts the main loop for stop or reload
        self._live_keys = {ref.key for ref in config.checks()}
        self._started = False

    @property
    def config(self) -> Config:
        return self.view.config

    def _record(self, ref: CheckRef, result: CheckResult) -> None:
        if ref.key not in self._live_keys:
            return  # a result from a check a reload removed
        self.store.record(ref.key, ref.config.kind, result, ref.config.staleness)
        self.counters.record(ref, result)
        level = logging.INFO if result.success else logging.WARNING
        log.log(
            level,
            "%s %s in %.3fs%s%s",
            ref.label,
            "ok" if result.success else "FAILED",
            result.duration,
            f" reason={result.reason}" if result.reason else "",
            f": {result.detail}" if result.detail else "",
        )

    def _ready(self) -> bool:
        return self._started and not self._stop.is_set()

    def start(self) -> None:
        self.server.start()
        self.scheduler.schedule(self.config.checks())
        self.scheduler.every("flush", self.config.flush_interval, self.store.flush)
        self.scheduler.every("prune", PRUNE_INTERVAL, lambda: self.store.prune(self.clock()))
        self.scheduler.start()
        self.store.prune(self.clock())
        self._started = True
        checks = sum(1 for _ in self.config.checks())
        log.info(
            "monai-slo running %d checks; metrics on http://%s/metrics", checks, self.config.listen
        )
        systemd.notify(f"READY=1\nSTATUS=running {checks} checks")

    def reload(self) -> bool:
        """Swap in a freshly loaded config; on error keep the running one."""
        if self._reload_config is None:
            return False
        try:
            new = self._reload_config()
        except SourceError as exc:
            self.view.reload_successful = False
            log.error("config reload failed, keeping the running config:\n%s", exc)
            systemd.notify("STATUS=config reload failed; running the previous config")
            return False
        if new.storage != self.config.storage or new.listen != self.config.listen:
            log.warning("storage and listen changes take effect at the next restart")
        self._live_keys = {ref.key for ref in new.checks()}
        self.view.config = new
        self.view.reload_successful = True
        self.view.reload_timestamp = self.clock()
        self.scheduler.schedule(new.checks())
        log.info("config reloaded from %s", new.source)
        systemd.notify(f"STATUS=running {len(self._live_keys)} checks (reloaded)")
        return True

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested.set()
        self._wake.set()

    def run_until_stopped(self, duration: float | None = None) -> None:
        """Block, serving reloads, until SIGTERM/SIGINT (or ``duration`` seconds)."""
        self._install_signals()
        self.start()
        until = None if duration is None else time.monotonic() + duration
        try:
            while not self._stop.is_set():
                timeout = None if until is None else until - time.monotonic()
                if timeout is not None and timeout <= 0:
                    break
                self._wake.wait(timeout)
                self._wake.clear()
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self.reload()
        finally:
            self.stop()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum: int, frame: FrameType | None) -> None:
            self._stop.set()
            self._wake.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)

    def stop(self) -> None:
        self._stop.set()
        systemd.notify("STOPPING=1")
        self.scheduler.shutdown()
        self.runner.shutdown()
        self.server.stop()
        self.store.close()
        log.info("monai-slo stopped")
