"""How refused tasks are named: the reason from the ledger's last_error, the summary text and
the fix lines for owner and other refusals."""

from __future__ import annotations

from worker.sync.context import Counts
from worker.sync.refusals import failed_text, hints, reason_of


def test_reason_is_the_crm_code_in_front_of_the_message() -> None:
    assert reason_of("INACTIVE_OWNER_OR_USER: operation performed with inactive user") == \
        "INACTIVE_OWNER_OR_USER"
    assert reason_of("None: no answer") == "None"
    assert reason_of("a message without a code: here") == "UNKNOWN"
    assert reason_of(None) == "UNKNOWN"


def test_summary_counts_by_reason() -> None:
    assert failed_text(0, {}) == "0 failed"
    assert failed_text(9, {"STRING_TOO_LONG": 2, "INACTIVE_OWNER": 7}) == \
        "9 failed (INACTIVE_OWNER 7, STRING_TOO_LONG 2)"


def test_hints_name_the_owners_and_the_other_codes() -> None:
    counts = Counts(tasks_failed=9, failed_by_reason={"INACTIVE_OWNER": 7,
                                                      "FIELD_CUSTOM_VALIDATION_EXCEPTION": 2},
                    refused_owners={"41629779": "Abigail Lynch", "7": ""})
    owner, other = hints("acme-hs", counts, (), "winback.yaml")
    assert "7 task(s) refused" in owner and "Abigail Lynch (41629779), 7" in owner
    assert "set fallback_owner on connection acme-hs" in owner
    assert "`winback owners winback.yaml`" in owner
    assert "2 task(s) refused by a CRM rule (FIELD_CUSTOM_VALIDATION_EXCEPTION)" in other
    assert hints("acme-hs", Counts(), ()) == []
