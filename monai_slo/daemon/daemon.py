"""The daemon: config -> scheduler -> runner -> history + live counters -> /metrics.

SIGHUP reloads the config (a bad new config, whatever is wrong with it, keeps the old one
running and says why in one log line); SIGTERM and SIGINT stop cleanly after a last flush.
History faults while running leave the daemon checking and serving (see monai_slo.history.store);
/-/ready is false while the history cannot be written.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from prometheus_client import CollectorRegistry

from monai_slo.checks.base import CheckResult
from monai_slo.checks.registry import IN_PROCESS_KINDS
from monai_slo.config.model import CheckRef, Config, parse_listen
from monai_slo.daemon import systemd
from monai_slo.daemon.api import DaemonApi, changes_refused
from monai_slo.daemon.process_pool import WorkerProcesses, default_processes
from monai_slo.daemon.runner import CheckRunner
from monai_slo.daemon.scheduler import CheckScheduler
from monai_slo.daemon.server import MetricsServer
from monai_slo.daemon.state_log import StateLog
from monai_slo.history.rollup import archive_and_prune
from monai_slo.history.store import DAEMON_READ_WAIT, DAEMON_WRITE_WAIT, HistoryStore
from monai_slo.outputs.metrics import DaemonView, LiveCounters, SloCollector, StudyFlowLatencies
from monai_slo.outputs.status_page import StatusPage
from monai_slo.yaml_source import SourceError

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0
# PRAGMA quick_check reads the whole file: 0.25 s for 30 days of 1,000 checks (16 MB).
INTEGRITY_INTERVAL = 3600.0
# A /metrics scrape makes tens of thousands of short-lived objects; at Python's default
# threshold (700) the cyclic collector runs over them, and over everything long-lived,
# hundreds of times per scrape: ~40 ms of a ~110 ms scrape at 1,000 checks. What the daemon
# makes is freed by reference counting; the collector only needs to run now and then.
GC_THRESHOLD = (50_000, 20, 20)


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
        self.state_log = StateLog()
        # Raises StoreError (one line naming the path) when the history cannot be used.
        self.store = HistoryStore(
            config.storage,
            retention=config.retention,
            archive_retention=config.archive_retention,
            write_wait=DAEMON_WRITE_WAIT,
            read_wait=DAEMON_READ_WAIT,
            clock=clock,
        )
        self.counters = LiveCounters()
        self.runner = CheckRunner(
            config.workers, self._record, clock=clock, processes=_worker_processes(config)
        )
        self.view = DaemonView(
            config,
            self.store,
            self.counters,
            skipped=lambda: dict(self.runner.skipped),
            clock=clock,
        )
        self.registry = CollectorRegistry(auto_describe=False)
        collector = SloCollector(self.view)
        self.registry.register(collector)
        self.scheduler = CheckScheduler(self.runner.submit)
        self.view.lateness = self.runner.lateness
        self.view.missed = lambda: dict(self.scheduler.missed)
        self.study_flow = StudyFlowLatencies()  # canary latencies per stage
        self.view.study_flow = self.study_flow
        self.view.in_flight = self.runner.pending
        host, port = parse_listen(config.listen)
        self.status_page = StatusPage(lambda: self.view.config, self.store, clock=clock)
        self.api = DaemonApi(
            config=lambda: self.view.config,
            store=self.store,
            reports=collector.reports,
            canaries=self.runner.canaries,
            refusal=changes_refused(
                config.web is not None and bool(config.web.basic_auth_users), host
            ),
            clock=clock,
        )
        self.server = MetricsServer(
            host,
            port,
            self.registry,
            ready=self._ready,
            page=self.status_page.render,
            web=config.web,
            api=self.api,
        )
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._wake = threading.Event()  # interrupts the main loop for stop or reload
        self._live_keys = {ref.key for ref in config.checks()}
        self._started = False
        # The watchdog pings systemd only while this scheduler-run heartbeat stays fresh.
        self.heartbeat = systemd.Heartbeat()
        self._watchdog: systemd.Watchdog | None = None
        self._status = ""

    @property
    def config(self) -> Config:
        return self.view.config

    def _record(self, ref: CheckRef, result: CheckResult) -> None:
        if ref.key not in self._live_keys:
            return  # a result from a check a reload removed
        latency = ref.config.latency
        self.store.record(
            ref.key,
            ref.config.kind,
            result,
            ref.config.staleness,
            None if latency is None else latency.threshold,
        )
        self.counters.record(ref, result)
        self.study_flow.record(ref, result)
        self.state_log.record(ref, result)

    def _archive(self) -> None:
        """Roll up the days that aged out of the retention, then prune."""
        archive_and_prune(self.view.config, self.store, self.clock())

    def _ready(self) -> bool:
        return self._started and not self._stop.is_set() and self.store.healthy()

    def _beat(self) -> None:
        """The heartbeat job: proves the scheduler runs jobs; keeps systemd's STATUS= current."""
        self.heartbeat.beat()
        self._notify_status()

    def status_line(self) -> str:
        """'12 checks: 11 up, 1 down' from the last results (what `systemctl status` shows)."""
        keys = self._live_keys
        with self.counters.lock:
            last = [self.counters.last.get(key) for key in keys]
        up = sum(1 for result in last if result is not None and result.success)
        down = sum(1 for result in last if result is not None and not result.success)
        pending = len(keys) - up - down
        line = f"{len(keys)} check{'' if len(keys) == 1 else 's'}: {up} up, {down} down"
        if pending:
            line += f", {pending} pending"
        if not self.view.reload_successful:
            line += "; config reload failed, running the previous config"
        return line

    def _notify_status(self, prefix: str = "") -> None:
        status = self.status_line()
        if prefix or status != self._status:  # one datagram per change, not per beat
            self._status = status
            systemd.notify(f"{prefix}STATUS={status}")

    def start(self) -> None:
        gc.set_threshold(*GC_THRESHOLD)
        self.server.start()
        self.scheduler.schedule(self.config.checks())
        self.scheduler.every("flush", self.config.flush_interval, self.store.flush)
        self.scheduler.every("prune", PRUNE_INTERVAL, self._archive)
        self.scheduler.every("integrity", INTEGRITY_INTERVAL, self.store.check_integrity)
        watchdog_period = systemd.watchdog_period()
        self.scheduler.every("heartbeat", systemd.heartbeat_interval(watchdog_period), self._beat)
        if self.runner.processes is not None:
            # First runs must not time out while the processes import their kinds.
            self.runner.processes.wait_ready()
        self.scheduler.start()
        self._archive()
        self._started = True
        checks = sum(1 for _ in self.config.checks())
        log.info(
            "monai-slo running %d checks; metrics on http://%s/metrics", checks, self.config.listen
        )
        self._notify_status("READY=1\n")
        if watchdog_period is not None:
            self.heartbeat.beat()
            self._watchdog = systemd.Watchdog(self.heartbeat, watchdog_period)
            self._watchdog.start()

    def reload(self) -> bool:
        """Swap in a freshly loaded config; on error keep the running one."""
        if self._reload_config is None:
            return False
        systemd.notify(systemd.reloading_message())
        try:
            new = self._reload_config()
        except Exception as exc:  # any failure, not only a bad file, keeps the running config
            self.view.reload_successful = False
            if isinstance(exc, SourceError) and len(exc.issues) > 1:
                log.error("config reload failed, keeping the running config:\n%s", exc)
            else:
                reason = str(exc) if isinstance(exc, SourceError) else _one_line(exc)
                log.error("config reload failed, keeping the running config: %s", reason)
            self._notify_status("READY=1\n")
            return False
        if (
            new.storage != self.config.storage
            or new.listen != self.config.listen
            or new.worker_processes != self.config.worker_processes
        ):
            log.warning(
                "storage, listen and worker_processes changes take effect at the next restart"
            )
        self._live_keys = {ref.key for ref in new.checks()}
        self.view.config = new
        self.view.reload_successful = True
        self.view.reload_timestamp = self.clock()
        self.scheduler.schedule(new.checks())
        log.info("config reloaded from %s", new.source)
        self._notify_status("READY=1\n")
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
        if self._watchdog is not None:
            self._watchdog.stop()
        self.scheduler.shutdown()
        self.runner.shutdown()
        self.server.stop()
        self.store.close()
        log.info("monai-slo stopped")


def _worker_processes(config: Config) -> WorkerProcesses | None:
    refs = list(config.checks())
    count = config.worker_processes
    if count is None:
        count = default_processes(len(refs))
    if not count:
        return None
    kinds = {ref.config.kind for ref in refs} - IN_PROCESS_KINDS
    # Each thread waits for one check there, abandoned threads included (as many again).
    return WorkerProcesses(count, 2 * config.workers, preload=sorted(kinds))


def _one_line(exc: BaseException) -> str:
    """An unexpected error as one log line: its type and first line, no traceback."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
