"""Peers for study-flow tests: routers that forward what they receive, an "AI application".

* ``OrthancRouter``: Orthanc whose Lua ``OnStoredInstance`` sends every stored instance
  to the modalities it was given (``SendToModality``); ``set_forwarding(False)`` breaks
  the flow (a Lua global flipped through ``/tools/execute-script``) and ``True`` mends it.
* ``StorescpRouter``: DCMTK ``storescp`` running ``storescu`` on every received file
  (``--exec-on-reception``), forwarding to one target.
* ``AiApplication``: a pynetdicom Storage SCP in this process; for every canary it
  receives it stores, after ``delay`` seconds, a derived Basic Text SR in the same study
  into ``result_to`` (the PACS), as an AI application behind the Informatics Gateway
  would. With no ``result_to`` it is a plain sink that counts what it received.
* ``orthanc_pacs``: a module's Orthanc as PACS (AE ``PACS``, DICOMweb at ``/dicom-web``).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    BasicTextSRStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from tests.fixtures_dicom import LOOPBACK, OrthancPeer, StorescpPeer, require_binary

__all__ = ["AiApplication", "OrthancRouter", "StorescpRouter", "orthanc_get", "orthanc_pacs"]

_LUA = """
forwarding = true
function OnStoredInstance(instanceId, tags, metadata, origin)
  if forwarding then
{sends}
  end
end
"""


def orthanc_get(peer: OrthancPeer, path: str, *, method: str = "GET", body: str = "") -> Any:
    """JSON from an Orthanc's REST API (http.client: no proxy from the environment)."""
    conn = http.client.HTTPConnection(LOOPBACK, peer.http_port, timeout=10.0)
    try:
        conn.request(method, path, body=body.encode() if body else None)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, (response.status, data[:200])
        return json.loads(data) if data else None
    finally:
        conn.close()


class OrthancRouter(OrthancPeer):
    """Orthanc forwarding every stored instance to ``targets`` (name -> (aet, host, port))."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        targets: dict[str, tuple[str, str, int]],
        aet: str = "ROUTER",
    ) -> None:
        self.targets = dict(targets)
        super().__init__(
            workdir,
            aet=aet,
            extra_config={
                "DicomModalities": {name: list(t) for name, t in self.targets.items()},
                "LuaScripts": [],
                "ExecuteLuaEnabled": True,
                "DicomAlwaysAllowStore": True,
            },
        )

    def _command(self) -> list[str]:
        script = self.workdir / "forward.lua"
        sends = "\n".join(f"    SendToModality(instanceId, '{name}')" for name in self.targets)
        script.write_text(_LUA.format(sends=sends))
        self.extra_config["LuaScripts"] = [str(script)]
        return super()._command()

    def set_forwarding(self, on: bool) -> None:
        conn = http.client.HTTPConnection(LOOPBACK, self.http_port, timeout=10.0)
        try:
            conn.request("POST", "/tools/execute-script", body=f"forwarding = {str(on).lower()}")
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
        finally:
            conn.close()


class StorescpRouter(StorescpPeer):
    """storescp that forwards each received file with storescu to ``target``."""

    def __init__(
        self, workdir: Path | None = None, *, target: tuple[str, str, int], aet: str = "DCMROUTER"
    ) -> None:
        super().__init__(workdir, aet=aet)
        self.target = target
        self.storescu = require_binary("storescu")

    def _command(self) -> list[str]:
        command = super()._command()
        aet, host, port = self.target
        forward = f"{self.storescu} -aet {self.aet} -aec {aet} {host} {port} #p/#f"
        # storescp runs the command in a child of its own and goes on receiving.
        return [*command[:-1], "--exec-on-reception", forward, command[-1]]


def derived_sr(canary: Dataset) -> Dataset:
    """A Basic Text SR in the canary's study: what an AI application sends back."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BasicTextSRStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr = Dataset()
    sr.file_meta = meta
    sr.SOPClassUID = BasicTextSRStorage
    sr.SOPInstanceUID = sop_uid
    sr.StudyInstanceUID = canary.StudyInstanceUID
    sr.SeriesInstanceUID = generate_uid()
    for keyword in ("PatientID", "PatientName", "StudyDate", "StudyTime", "StudyID"):
        setattr(sr, keyword, canary.get(keyword, ""))
    sr.AccessionNumber = ""
    sr.ReferringPhysicianName = ""
    sr.Modality = "SR"
    sr.SeriesNumber = 900
    sr.InstanceNumber = 1
    sr.Manufacturer = "test AI application"
    sr.ValueType = "CONTAINER"
    sr.ContinuityOfContent = "SEPARATE"
    sr.CompletionFlag = "COMPLETE"
    sr.VerificationFlag = "UNVERIFIED"
    concept = Dataset()
    concept.CodeValue = "18748-4"
    concept.CodingSchemeDesignator = "LN"
    concept.CodeMeaning = "Diagnostic imaging report"
    sr.ConceptNameCodeSequence = [concept]
    return sr


class AiApplication:
    """A Storage SCP that answers each received canary with an SR stored into the PACS."""

    host = LOOPBACK

    def __init__(
        self,
        *,
        aet: str = "AIAPP",
        result_to: tuple[str, str, int] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.aet = aet
        self.result_to = result_to
        self.delay = delay
        self.received = 0
        self.results_sent = 0
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self._ae = AE(ae_title=aet)
        self._ae.add_supported_context(Verification)
        self._ae.add_supported_context(SecondaryCaptureImageStorage, ALL_TRANSFER_SYNTAXES)
        self._server: Any = None
        self.port = 0

    @property
    def dicom_port(self) -> int:
        return self.port

    def _on_store(self, event: Any) -> int:
        dataset = event.dataset
        with self._lock:
            self.received += 1
        if self.result_to is not None:
            timer = threading.Timer(self.delay, self._send_result, args=(dataset,))
            timer.daemon = True
            with self._lock:
                self._timers.add(timer)
            timer.start()
        return 0x0000

    def _send_result(self, canary: Dataset) -> None:
        assert self.result_to is not None
        aet, host, port = self.result_to
        client = AE(ae_title=self.aet)
        client.add_requested_context(BasicTextSRStorage, ExplicitVRLittleEndian)
        assoc = client.associate(host, port, ae_title=aet)
        if assoc.is_established:
            status = assoc.send_c_store(derived_sr(canary))
            assoc.release()
            if int(getattr(status, "Status", -1)) == 0:
                with self._lock:
                    self.results_sent += 1

    def start(self) -> Self:
        self._server = self._ae.start_server(
            (LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = set(self._timers), set()
        for timer in timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._ae.shutdown()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="module")
def orthanc_pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """An Orthanc as the PACS (AE PACS) with DICOMweb, shared by a module's tests."""
    with OrthancPeer(tmp_path_factory.mktemp("pacs"), aet="PACS", plugins=True) as peer:
        yield peer
