"""The kinds by name: the ``kind`` key of a check looks its module up here.

A kind's module is imported the first time its name is looked up, not when this module is:
the DICOM kinds bring pynetdicom and pydicom (~300 ms of a fresh process), ``http`` and
``dicomweb`` their JSON conditions, ``host`` psutil, and a verb such as ``tiers`` needs none
of them, ``validate`` or ``status`` only the kinds its config names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, Pending


@dataclass(frozen=True, slots=True)
class CheckKind:
    name: str
    config_type: type[CheckConfig]
    run: Callable[[Any, Deadline], CheckOutcome | Pending]


# Each kind's module: it defines ``Config`` (a CheckConfig) and ``run(config, deadline)``.
MODULES: dict[str, str] = {
    "dicom_echo": "monai_slo.checks.dicom.echo",
    "dicom_find": "monai_slo.checks.dicom.find",
    "dicom_store_context": "monai_slo.checks.dicom.store_context",
    "dicomweb": "monai_slo.checks.dicomweb",
    "gpu": "monai_slo.checks.gpu",
    "host": "monai_slo.checks.host",
    "http": "monai_slo.checks.http",
    "ssh": "monai_slo.checks.ssh",
    "study_flow": "monai_slo.checks.dicom.study_flow",
    "tcp": "monai_slo.checks.tcp",
}


class Kinds(MutableMapping[str, CheckKind]):
    """``kind`` name -> :class:`CheckKind`, importing a kind's module on its first lookup.

    Iterating, ``len`` and ``in`` need no import; ``values()`` and ``items()`` import every
    kind. An entry may be replaced (tests put a fake ``run`` in place) and put back.
    """

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = dict(modules)
        self._kinds: dict[str, CheckKind] = {}

    def __getitem__(self, name: str) -> CheckKind:
        kind = self._kinds.get(name)
        if kind is None:
            module = importlib.import_module(self._modules[name])  # KeyError: unknown kind
            kind = CheckKind(name, module.Config, module.run)
            self._kinds[name] = kind
        return kind

    def __setitem__(self, name: str, kind: CheckKind) -> None:
        self._modules.setdefault(name, "")
        self._kinds[name] = kind

    def __delitem__(self, name: str) -> None:
        del self._modules[name]
        self._kinds.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def loaded(self) -> list[CheckKind]:
        """The kinds looked up so far (no import)."""
        return list(self._kinds.values())


KINDS = Kinds(MODULES)

# Kinds the daemon runs on its own threads even when it has worker processes: study_flow
# answers Pending (its poll is a closure, which cannot cross processes); gpu and host read
# this machine through libraries that keep state per process (NVML's handle, psutil's CPU
# counters between calls).
IN_PROCESS_KINDS = frozenset({"gpu", "host", "study_flow"})
