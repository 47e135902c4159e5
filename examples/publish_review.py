"""A workflow that waits for a person: publish an article once a reviewer approves it.

The wait is durable: the run can sit for two days across restarts. Approve it from code
(``runtime.signal``), from another process (``tarry.Client``), or from a terminal::

    tarry --db review.db worker examples.publish_review:review &
    tarry --db review.db trigger publish --run-id article-1 --payload '{"article": "hello"}' --wait
    tarry --db review.db signal article-1 review-decision --payload '{"approved": true}' --as ana@example.com --wait

The run keeps who decided (``ctx.last_signal_sender``: ``--as``, a Client's ``identity=``,
or ``user@host`` of the sender's process), journaled with the wait, so it is the same on
every replay.
"""

from __future__ import annotations

from typing import Any

from tarry import RunContext, workflow

published: list[str] = []


def publish(article: str) -> dict[str, Any]:
    published.append(article)
    return {"url": f"https://example.invalid/{article}"}


async def run(ctx: RunContext[Any]) -> dict[str, Any]:
    article = (ctx.payload or {}).get("article", "draft")
    decision = await ctx.wait_for_event("review", "review-decision", timeout={"amount": 2, "unit": "days"})
    if decision is None:
        return {"published": False, "reason": "nobody decided within two days"}
    decided_by = ctx.last_signal_sender
    if not decision.get("approved"):
        return {"published": False, "reason": decision.get("reason", "rejected"), "decided_by": decided_by}
    page = await ctx.step("publish", publish, article)
    return {"published": True, **page, "decided_by": decided_by}


review = workflow("publish", description="Publish an article after a reviewer approves it.")(run)
