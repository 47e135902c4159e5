"""A workflow that waits for a person: publish an article once a reviewer approves it.

The wait is durable: the run can sit for two days across restarts. Approve it from code
(``runtime.signal``), from another process (``engine.Client``), or from a terminal::

    tarry --db review.db worker examples.publish_review:review &
    tarry --db review.db trigger publish --run-id article-1 --payload '{"article": "hello"}' --wait
    tarry --db review.db signal article-1 review-decision --payload '{"approved": true}' --wait
"""

from __future__ import annotations

from typing import Any

from engine import RunContext, define_workflow

published: list[str] = []


def publish(article: str) -> dict[str, Any]:
    published.append(article)
    return {"url": f"https://example.invalid/{article}"}


async def run(ctx: RunContext[Any]) -> dict[str, Any]:
    article = (ctx.payload or {}).get("article", "draft")
    decision = await ctx.wait_for_event("review", "review-decision", timeout={"amount": 2, "unit": "days"})
    if decision is None:
        return {"published": False, "reason": "nobody decided within two days"}
    if not decision.get("approved"):
        return {"published": False, "reason": decision.get("reason", "rejected")}
    page = await ctx.step("publish", publish, article)
    return {"published": True, **page}


review = define_workflow(id="publish", run=run, description="Publish an article after a reviewer approves it.")
