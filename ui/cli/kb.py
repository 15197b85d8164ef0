"""`iqts kb`: the knowledge base (add files and notes, search with citations, list, remove)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ui.cli.common import database
from ui.cli.console import emit_json, out

app = typer.Typer(help="Knowledge base: strategy notes, reports, risk policy, journal.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
KindsOpt = Annotated[
    list[str] | None,
    typer.Option("--kind", help="note, strategy, report, risk_policy, journal or glossary (repeatable)."),
]
_SNIPPET_CHARS = 300


@app.command("add")
def add_cmd(
    path: Annotated[Path, typer.Argument(help="a Markdown, text or PDF file, or a folder (recursive)")],
    kind: Annotated[str | None, typer.Option(help="force the kind of every document added")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="also remove stored files under PATH that are gone")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Index files; unchanged ones (same content hash) are skipped, changed ones re-indexed."""
    from knowledge.models import parse_kinds
    from knowledge.service import ingest_path

    kinds = parse_kinds([kind] if kind else None)
    with database() as db:
        report = ingest_path(db, path, kind=kinds[0] if kinds else None, prune=prune)
    if as_json:
        emit_json(report)
        return
    for doc in report.documents:
        if doc.status == "unchanged":
            continue
        detail = f" ({doc.chunks} chunks)" if doc.chunks else (f" ({doc.reason})" if doc.reason else "")
        out.print(f"{doc.status:9} {escape(doc.title or doc.source)}{escape(detail)}", highlight=False)
    out.print(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, {report.skipped} skipped, "
        f"{report.removed} removed; {report.chunks_embedded} chunks embedded in {report.seconds:.1f}s",
        highlight=False,
    )


@app.command("note")
def note_cmd(
    title: Annotated[str, typer.Argument()],
    text: Annotated[str, typer.Argument(help="the note (Markdown allowed)")],
    kind: Annotated[str, typer.Option(help="note, strategy, report, risk_policy, journal or glossary")] = "note",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable)")] = None,
    source: Annotated[str | None, typer.Option(help="a URI naming the note; adding it again updates it")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a note."""
    from knowledge.models import parse_kinds
    from knowledge.service import add_note

    [checked] = parse_kinds([kind]) or ["note"]
    with database() as db:
        ref = add_note(db, title, text, checked, tag or (), source)
    if as_json:
        emit_json(ref)
        return
    out.print(f"{ref.status} {escape(ref.source)} (id {ref.id}, {ref.chunks} chunks)", highlight=False)


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument()],
    k: Annotated[int, typer.Option("-k", help="number of hits")] = 5,
    kind: KindsOpt = None,
    hybrid: Annotated[bool, typer.Option("--hybrid/--vector-only", help="fuse full-text search")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Search with citations (document, section, score)."""
    from knowledge.models import parse_kinds
    from knowledge.service import search_knowledge

    with database() as db:
        result = search_knowledge(db, query, k, parse_kinds(kind), hybrid)
    if as_json:
        emit_json(result)
        return
    if not result.hits:
        out.print("no matching documents")
        return
    for rank, hit in enumerate(result.hits, start=1):
        snippet = " ".join(hit.text.split())
        if len(snippet) > _SNIPPET_CHARS:
            snippet = snippet[:_SNIPPET_CHARS] + "..."
        out.print(f"[bold]{rank}. {escape(hit.citation)}[/]  score {hit.score:.4f}", highlight=False)
        out.print(f"   [dim]{escape(snippet)}[/]", highlight=False)


@app.command("list")
def list_cmd(kind: KindsOpt = None, as_json: JsonOpt = False) -> None:
    """What is indexed and from where: kind, origin (file, note, journal, starter), title, chunks, source."""
    from knowledge.models import parse_kinds
    from knowledge.service import list_documents, seed_starter_documents

    with database() as db:
        seed_starter_documents(db)  # the generated documents are listed current (cheap when unchanged)
        documents = list_documents(db, parse_kinds(kind))
    if as_json:
        emit_json(documents)
        return
    table = Table("id", "kind", "origin", "title", "chunks", "source", "updated")
    for doc in documents:
        table.add_row(
            str(doc.id),
            doc.kind,
            doc.origin,
            escape(doc.title),
            str(doc.chunks),
            escape(doc.source),
            doc.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@app.command("remove")
def remove_cmd(
    source: Annotated[str, typer.Argument(help="a stored file path or note URI (see `iqts kb list`)")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a document and its chunks."""
    from knowledge.service import remove_document

    with database() as db:
        info = remove_document(db, source)
    if as_json:
        emit_json(info)
        return
    out.print(f"removed {escape(info.title)} ({escape(info.source)}, {info.chunks} chunks)", highlight=False)
