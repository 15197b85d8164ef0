"""Sources cited, not retyped: an answer drawn from the knowledge base names its documents (``agent.guards.
citations``), and a search that found nothing of the question cites nothing; end to end over the real MCP server."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage

from agent.guards.citations import citation_line, cited_titles
from agent.models.scripted import tool_call
from agent.session import Copilot
from tests.unit.agent.conftest import CopilotFactory
from tests.unit.agent.test_graph import final


def search(*titles: str, found: list[str] | None = None, missing: list[str] | None = None) -> dict[str, Any]:
    return {
        "query": "q",
        "hits": [{"title": t, "source": f"note://{i}", "text": "..."} for i, t in enumerate(titles)],
        "words_found": ["eth"] if found is None else found,
        "not_in_any_passage": missing or [],
    }


def test_the_best_titles_the_answer_does_not_name_are_cited() -> None:
    artifacts = [("search_knowledge", search("ETH thesis 2024", "ETH thesis 2024", "Journal 2024-03-14", "Other"))]
    assert cited_titles(artifacts) == ["ETH thesis 2024", "Journal 2024-03-14"]
    assert citation_line(artifacts, "You are long ETH for the fee burn.") == (
        "Sources: ETH thesis 2024; Journal 2024-03-14"
    )
    assert citation_line(artifacts, "As 'ETH thesis 2024' says ...") == "Sources: Journal 2024-03-14"


def test_nothing_is_cited_when_no_word_of_the_question_was_found_or_no_search_ran() -> None:
    unrelated = [("search_knowledge", search("Strategy sma_cross", found=[], missing=["solana", "options"]))]
    assert citation_line(unrelated, "Your notes do not mention Solana options.") == ""
    assert citation_line([("get_ticker", {"last": 1})], "BTC is 1.") == ""


async def test_a_knowledge_answer_names_the_note_it_came_from(copilot: CopilotFactory) -> None:
    async with copilot([tool_call("add_note", title="Sizing rule", text="Risk at most 1% of equity per trade.")]) as (
        c,
        _,
    ):
        await c.ask(Copilot.new_thread_id(), "Save a note titled 'Sizing rule': risk at most 1% of equity per trade.")
    script = [
        tool_call("search_knowledge", query="sizing rule risk per trade"),
        AIMessage(content="You risk at most 1% of equity per trade."),
    ]
    async with copilot(script) as (c, _):
        events = await c.ask(Copilot.new_thread_id(), "How much do I risk per trade by my sizing rule?")
    answer = final(events)
    assert answer.text.startswith("You risk at most 1% of equity per trade.")
    assert "Sources: Sizing rule" in answer.text
