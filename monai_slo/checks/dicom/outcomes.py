"""What a DICOM check says went wrong: one table of words, read by both association paths.

The pynetdicom path (:mod:`monai_slo.checks.dicom.association`) and the lean C-ECHO path
(:mod:`monai_slo.checks.dicom.lean`) observe a failure differently (pynetdicom's state
machine, or the PDUs read off the socket) but report it here, so the same peer behaviour
has the same reason and the same detail on either path.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.uid import UID

from monai_slo.checks import net
from monai_slo.checks.base import CheckOutcome, FailureReason
from monai_slo.checks.dicom.common import DicomConfig
from monai_slo.checks.net import ProbeFailure

DURING_ASSOCIATION = "during association"
IN_ASSOCIATION_ANSWER = "in its association answer"


def after_request(operation: str) -> str:
    """``after the C-ECHO request``: when a failure came, once associated."""
    return f"after the {operation} request"


# --- A-ASSOCIATE-RJ (PS3.8 9.3.4) ---------------------------------------------------------

REJECT_SOURCES: Mapping[int | None, str] = {
    1: "service user",
    2: "service provider (ACSE)",
    3: "service provider",
}
REJECT_REASONS: Mapping[tuple[int | None, int | None], str] = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


def rejection(
    rejection: tuple[int | None, int | None, int | None], config: DicomConfig
) -> CheckOutcome:
    """The A-ASSOCIATE-RJ's (result, source, diagnostic) as a reason and words."""
    result, source, diagnostic = rejection
    reason_words = REJECT_REASONS.get((source, diagnostic), f"diagnostic {diagnostic}")
    if (source, diagnostic) == (1, 3):
        return CheckOutcome.fail(
            FailureReason.REJECTED_CALLING_AE,
            f"association rejected: calling AE title not recognised ({config.calling_aet})",
        )
    if (source, diagnostic) == (1, 7):
        return CheckOutcome.fail(
            FailureReason.REJECTED_CALLED_AE,
            f"association rejected: called AE title not recognised ({config.called_aet})",
        )
    source_words = REJECT_SOURCES.get(source, f"source {source}")
    permanence = "transient" if result == 2 else "permanent"
    detail = f"association rejected ({permanence}) by {source_words}: {reason_words}"
    if result == 2 or (source, diagnostic) in {(3, 1), (3, 2)}:
        return CheckOutcome.fail(FailureReason.REJECTED_TRANSIENT, detail)
    return CheckOutcome.fail(FailureReason.REJECTED, detail)


# --- A-ABORT (PS3.8 9.3.8) ----------------------------------------------------------------

ABORT_REASONS: Mapping[int | None, str] = {
    0: "reason not specified",
    1: "unrecognised PDU",
    2: "unexpected PDU",
    4: "unrecognised PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


def abort_outcome(abort_pdu: tuple[int | None, int | None] | None, during: str) -> CheckOutcome:
    """ABORTED, saying who aborted and why, from the A-ABORT's (source, reason)."""
    source, reason = abort_pdu or (None, None)
    if source == 2:
        who = f"service provider: {ABORT_REASONS.get(reason, f'reason {reason}')}"
    else:
        who = "service user"
    return CheckOutcome.fail(FailureReason.ABORTED, f"association aborted by peer ({who}) {during}")


# --- Presentation contexts (PS3.8 9.3.3.2) ------------------------------------------------

CONTEXT_RESULTS: Mapping[int | None, str] = {
    1: "rejected by the user",
    2: "rejected, no reason given",
    3: "abstract syntax not supported",
    4: "none of the proposed transfer syntaxes supported",
}


def sop_name(uid: str) -> str:
    """``CT Image Storage`` for a known UID, the UID itself otherwise."""
    name = UID(uid).name
    return name if name and name != uid else uid


def context_rejected(
    abstract_syntax: str | None, result: int | None, config: DicomConfig
) -> CheckOutcome:
    """CONTEXT_REJECTED: the association stands but not the context proposed (None: the
    peer's answer named none)."""
    if abstract_syntax is None:
        return CheckOutcome.fail(
            FailureReason.CONTEXT_REJECTED,
            f"association accepted by {config.called_aet} but no presentation context",
        )
    words = CONTEXT_RESULTS.get(result, f"result {result}")
    return CheckOutcome.fail(
        FailureReason.CONTEXT_REJECTED,
        f"{sop_name(abstract_syntax)} not accepted by {config.called_aet}: {words}",
    )


def verification_not_accepted() -> CheckOutcome:
    # Kept as it was before context_rejected existed: dashboards count it as rejected.
    return CheckOutcome.fail(
        FailureReason.REJECTED, "association accepted but not the Verification SOP class"
    )


# --- Transport and association answer ----------------------------------------------------


CONNECT_WORDS: Mapping[FailureReason, str] = {
    FailureReason.TIMEOUT: "TCP connect to {where} timed out after {wait:g}s",
    FailureReason.REFUSED: "connection refused by {where}",
    FailureReason.UNREACHABLE: "{where} unreachable: {why}",
    FailureReason.CONNECTION: "cannot connect to {where}: {why}",
}


def connect_failure(exc: OSError, config: DicomConfig, wait: float) -> CheckOutcome:
    """A failed TCP connect after waiting ``wait`` seconds, in the DICOM kinds' words."""
    return net.connect_failure(exc, config.target, CONNECT_WORDS, wait=wait).outcome()


def read_limit_failure(limit: int) -> ProbeFailure:
    """PROTOCOL: the peer sent (or announced) more than an association may read."""
    return ProbeFailure(
        FailureReason.PROTOCOL, f"peer sent more than {limit} bytes (the bound for this check)"
    )


def still_sending(during: str, config: DicomConfig) -> CheckOutcome:
    """TIMEOUT: the peer kept sending (never finishing a PDU) until the deadline."""
    return CheckOutcome.fail(
        FailureReason.TIMEOUT,
        f"peer still sending {during} when the check's deadline ({config.timeout:g}s) was reached",
    )


def closed_before_answer() -> CheckOutcome:
    return CheckOutcome.fail(
        FailureReason.CONNECTION,
        "connection closed by peer before it answered the association request",
    )


def no_association_answer(wait: float) -> CheckOutcome:
    return CheckOutcome.fail(
        FailureReason.TIMEOUT, f"no answer to the association request within {wait:.3g}s"
    )


def malformed_pdu(during: str) -> CheckOutcome:
    return CheckOutcome.fail(
        FailureReason.PROTOCOL, f"unexpected or malformed PDU from peer {during}"
    )


def malformed_accept(missing: str) -> CheckOutcome:
    """PROTOCOL: an A-ASSOCIATE-AC without one of its mandatory items (PS3.8 9.3.3)."""
    return CheckOutcome.fail(
        FailureReason.PROTOCOL, f"malformed A-ASSOCIATE-AC from peer: no {missing} item"
    )


# --- The exchange once associated --------------------------------------------------------


def closed_after_request(operation: str) -> CheckOutcome:
    return CheckOutcome.fail(
        FailureReason.ABORTED,
        f"connection closed by peer {after_request(operation)} (A-P-ABORT)",
    )


def invalid_response(operation: str) -> CheckOutcome:
    return CheckOutcome.fail(FailureReason.PROTOCOL, f"invalid {operation} response from peer")


def no_response(operation: str, wait: float) -> CheckOutcome:
    return CheckOutcome.fail(FailureReason.TIMEOUT, f"no {operation} response within {wait:.3g}s")


def dimse_failure(operation: str, status: int, table: dict[int, tuple[str, str]]) -> CheckOutcome:
    """A DIMSE status other than success, with its code in hex and in words."""
    category, description = table.get(status, ("", ""))
    words = description or category or "unknown status"
    return CheckOutcome.fail(
        FailureReason.DIMSE_STATUS, f"{operation} failed: status 0x{status:04X} ({words.lower()})"
    )


def echo_accepted(config: DicomConfig) -> CheckOutcome:
    return CheckOutcome.ok(f"C-ECHO accepted by {config.called_aet} at {config.target}")


def release_not_confirmed(verdict: CheckOutcome) -> CheckOutcome:
    """A success whose A-RELEASE went unanswered: still a success, and it says so."""
    return CheckOutcome.ok(
        f"{verdict.detail} (release not confirmed)", verdict.values, verdict.series
    )
