"""``report.html``: one self-contained page per run (:mod:`.page`) and the pictures in it
(:mod:`.figures`)."""

from dltoolkit.report.figures import (
    TEST_OUTPUTS,
    Figure,
    load_test_outputs,
    overfitting_note,
    save_test_outputs,
)
from dltoolkit.report.page import REPORT_FILE, verdict, write_report, write_search_report

__all__ = [
    "REPORT_FILE",
    "TEST_OUTPUTS",
    "Figure",
    "load_test_outputs",
    "overfitting_note",
    "save_test_outputs",
    "verdict",
    "write_report",
    "write_search_report",
]
