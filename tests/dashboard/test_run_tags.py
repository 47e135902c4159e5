"""The dashboard's run list shows each run's tags and filters on one (``tag:NAME`` in the
search box), against a real SQLite database that a Client without the code reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tarry import Client, workflow
from tarry.dashboard import DashboardApp
from tarry.dashboard.source import split_search

from .helpers import wait_for
from .test_pilot import run_app, table


@workflow("tagged-invoice", tags=["billing", "approval"])
async def invoice(ctx: Any) -> Any:
    return None


@workflow("untagged")
async def untagged(ctx: Any) -> Any:
    return None


def test_split_search_takes_the_tag_word_out() -> None:
    assert split_search("tag:billing o_42") == ("billing", "o_42")
    assert split_search("o_42") == (None, "o_42")
    assert split_search("tag:billing") == ("billing", None)
    assert split_search("tag:") == (None, "tag:")
    assert split_search(None) == (None, None)


def test_the_run_list_shows_tags_and_filters_on_one(tmp_path: Path) -> None:
    db = tmp_path / "tags.db"
    with Client(db, workflows=[invoice, untagged]) as client:  # no worker: the runs wait for one
        client.trigger(invoice, None, run_id="inv-1")
        client.trigger(untagged, None, run_id="plain-1")
        client.trigger(invoice, None, run_id="inv-2")

    async def scenario(pilot: Pilot[Any], app: DashboardApp) -> None:
        runs = table(app)
        screen = app.screen
        await wait_for(pilot, lambda: len(runs.run_ids) == 3, "all three runs")
        cell = str(runs.get_cell("inv-1", "workflow"))
        # The workflow column has a width of its own: the tags follow the name, cut to fit.
        assert cell.startswith("tagged-invoice #approva")
        assert str(runs.get_cell("plain-1", "workflow")) == "untagged"
        await pilot.press("slash", *"tag:billing", "enter")
        await wait_for(pilot, lambda: runs.run_ids == ["inv-2", "inv-1"], "only the tagged runs")
        assert screen.total == 2
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: len(runs.run_ids) == 3, "every run again")
        await pilot.press("slash", *"tag:billing inv-2", "enter")  # a tag and a search at once
        await wait_for(pilot, lambda: runs.run_ids == ["inv-2"], "the tagged run matching the search")

    run_app(db, scenario)
