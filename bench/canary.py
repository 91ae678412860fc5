"""CPU per study_flow canary beside the floor of the same DICOM work done the plain way.

A canary is one run of the kind, as the daemon runs it (``runner.execute``: the send, then
the stage look-ups until seen, waiting between them): a new 8x8 Secondary Capture C-STOREd
to the router, then C-FINDs for its StudyInstanceUID at the PACS. The floor is pynetdicom
used the plain way in the same process and run: a copy of the same tiny dataset with new
UIDs, one association for the C-STORE, one for a C-FIND of its study. CPU is the whole
process's (``time.process_time()``: pynetdicom's threads count; the peers' own processes do
not), runs one after another.

Two flows: Orthanc as router and PACS in one (the canary is there at the first look-up, so
the canary does exactly the floor's two exchanges) and an Orthanc router forwarding with Lua
to an Orthanc PACS (look-ups until the forward landed, counted per canary).
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from monai_slo.checks.dicom import study_flow
from monai_slo.config.model import CheckRef
from monai_slo.daemon.runner import execute
from monai_slo.tiers import TierName
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
)
from tests.fixtures_study_flow import OrthancRouter

from bench.peers import OrthancPeer
from bench.report import Baseline, Row

RATIO_TARGET = 2.0
LOOK_AFTER = 0.25  # the canary's first look-up comes this long after the send
HOST = "127.0.0.1"


def flow_ref(send: tuple[str, int], pacs: tuple[str, int]) -> CheckRef:
    def endpoint(aet: str, port: int) -> dict[str, object]:
        return {"host": HOST, "port": port, "called_aet": aet}

    config = study_flow.Config.model_validate(
        {
            "name": "canary",
            "kind": "study_flow",
            "interval": "10s",
            "timeout": "8s",
            "poll": "1s",
            "send": endpoint(*send),
            "arrive": [{"name": "pacs", **endpoint(*pacs)}],
        }
    )
    return CheckRef("bench", TierName.PRODUCTION, "flow", config)


def cpu_per_run(run: Callable[[], None], runs: int) -> float:
    run()  # warm-up: imports, first-use caches
    started = time.process_time()
    for _ in range(runs):
        run()
    return (time.process_time() - started) / runs


def canary(ref: CheckRef, lookups: list[int]) -> Callable[[], None]:
    original = study_flow._Canary._look

    def counted(self: study_flow._Canary, stage: study_flow.Stage, deadline: object) -> object:
        lookups[-1] += 1
        return original(self, stage, deadline)  # type: ignore[arg-type]

    def once() -> None:
        lookups.append(0)
        study_flow._Canary._look = counted  # type: ignore[assignment,method-assign]
        try:
            result = execute(ref)
        finally:
            study_flow._Canary._look = original  # type: ignore[method-assign]
        if not result.success:
            raise RuntimeError(f"canary failed: {result.detail}")

    return once


def floor(template: Dataset, send: tuple[str, int], pacs: tuple[str, int]) -> Callable[[], None]:
    """The same work with plain pynetdicom: store a copy with new UIDs, find its study."""

    def once() -> None:
        dataset = copy.deepcopy(template)
        dataset.StudyInstanceUID = generate_uid()
        dataset.SeriesInstanceUID = generate_uid()
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ae = AE(ae_title="MONAI_SLO")
        ae.add_requested_context(SecondaryCaptureImageStorage)
        assoc = ae.associate(HOST, send[1], ae_title=send[0])
        status = assoc.send_c_store(dataset)
        assoc.release()
        if status.get("Status") != 0:
            raise RuntimeError(f"plain C-STORE failed: {status}")
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = dataset.StudyInstanceUID
        for _ in range(40):  # as the canary: look again until it is there
            time.sleep(LOOK_AFTER)  # pacing the look-ups as the canary's first one is paced
            ae = AE(ae_title="MONAI_SLO")
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
            assoc = ae.associate(HOST, pacs[1], ae_title=pacs[0])
            responses = assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
            found = sum(1 for _, identifier in responses if identifier is not None)
            assoc.release()
            if found:
                return
        raise RuntimeError("plain C-FIND never found the stored study")

    return once


def store_only(template: Dataset, send: tuple[str, int]) -> Callable[[], None]:
    def once() -> None:
        dataset = copy.deepcopy(template)
        dataset.StudyInstanceUID = generate_uid()
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ae = AE(ae_title="MONAI_SLO")
        ae.add_requested_context(SecondaryCaptureImageStorage)
        assoc = ae.associate(HOST, send[1], ae_title=send[0])
        status = assoc.send_c_store(dataset)
        assoc.release()
        if status.get("Status") != 0:
            raise RuntimeError(f"plain C-STORE failed: {status}")

    return once


def measure(
    flow: str,
    send: tuple[str, int],
    pacs: tuple[str, int],
    runs: int,
    notes: list[str],
    *,
    store_baseline: bool,
) -> Row:
    ref = flow_ref(send, pacs)
    template = study_flow.make_canary(ref.config)  # type: ignore[arg-type]
    lookups: list[int] = []
    ours = cpu_per_run(canary(ref, lookups), runs) * 1e3
    plain = cpu_per_run(floor(template, send, pacs), runs) * 1e3
    baselines = [Baseline("pynetdicom C-STORE + C-FIND (floor)", plain)]
    if store_baseline:
        alone = cpu_per_run(store_only(template, send), runs) * 1e3
        baselines.append(Baseline("pynetdicom C-STORE alone", alone))
    per_canary = sum(lookups[1:]) / max(1, len(lookups) - 1)
    notes.append(f"study_flow, {flow}: {per_canary:.2f} look-ups per canary ({runs} canaries)")
    return Row(
        "study_flow",
        f"CPU per canary, {flow}",
        ours,
        "ms",
        baselines,
        f"≤ {RATIO_TARGET:g}x the floor",
        ours <= RATIO_TARGET * plain,
    )


def run(quick: bool) -> tuple[list[Row], list[str]]:
    runs = 20 if quick else 100
    rows: list[Row] = []
    notes: list[str] = []
    with OrthancPeer(aet="PACS") as pacs:
        there = (pacs.aet, pacs.dicom_port)
        rows.append(
            measure("Orthanc as router and PACS", there, there, runs, notes, store_baseline=True)
        )
        with tempfile.TemporaryDirectory() as workdir:
            targets = {"pacs": (pacs.aet, HOST, pacs.dicom_port)}
            with OrthancRouter(Path(workdir), targets=targets) as router:
                rows.append(
                    measure(
                        "Orthanc router (Lua forward) to Orthanc PACS",
                        (router.aet, router.dicom_port),
                        there,
                        runs,
                        notes,
                        store_baseline=False,
                    )
                )
    return rows, notes
