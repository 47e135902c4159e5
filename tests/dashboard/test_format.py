"""The dashboard's text formats: one compact time span, payload summaries, cut text."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tarry.dashboard.format import age, countdown, fit, payload_summary, span

from .fakes import NOW


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.936, "936ms"),
        (0.9999, "999ms"),
        (1, "1s"),
        (59.9, "59s"),
        (60, "1m"),
        (15 * 60 + 59, "15m"),
        (3600, "1h"),
        (2 * 3600 + 59 * 60, "2h"),
        (47 * 3600 + 3599, "47h"),
        (2 * 86400, "2d"),
        (3 * 86400 + 23 * 3600, "3d"),
        (-5, "0ms"),
    ],
)
def test_span_has_one_unit_and_never_confuses_ms_with_minutes(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_age_and_short_countdowns_use_span() -> None:
    assert age(NOW - timedelta(milliseconds=936), NOW) == "936ms"
    assert age(NOW - timedelta(minutes=15, seconds=30), NOW) == "15m"
    assert age(None, NOW) == "-"
    assert countdown(NOW + timedelta(hours=47, minutes=59), NOW, short=True) == "in 47h"
    assert countdown(NOW - timedelta(seconds=3), NOW, short=True) == "overdue 3s"


def test_payload_summary_tells_runs_apart_on_one_short_line() -> None:
    ana, gus = {"customer": "ana", "item": "lunch"}, {"customer": "gus", "item": "laptop"}
    assert payload_summary(ana, 40) == "customer=ana item=lunch"
    assert payload_summary(gus, 40) == "customer=gus item=laptop"
    assert payload_summary(ana, 12) == "ana lunch"  # the names do not fit: the values alone
    assert payload_summary(gus, 8) == "gus lap…"
    nested = {"order": {"id": 1}, "lines": [1, 2], "note": "two\nlines", "paid": True, "n": None}
    assert payload_summary(nested, 60) == "order={…} lines=[…] note=two lines paid=true n=null"
    assert payload_summary(None, 10) == ""
    assert payload_summary({}, 10) == "{}"
    assert payload_summary([1, 2, 3], 10) == "[…]"
    assert payload_summary("a\nb", 10) == "a b"


def test_fit_cuts_with_an_ellipsis() -> None:
    assert fit("review-decision", 20) == "review-decision"
    assert fit("review-decision", 8) == "review-…"
    assert fit("a\n b", 8) == "a b"
    assert fit("abc", 0) == ""
