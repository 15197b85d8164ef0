-- The knowledge base on LlamaIndex (knowledge/store.py owns kb_documents and kb_chunks, knowledge/docstore.py owns
-- kb_docstore). Existing rows are migrated in place: every chunk keeps its text and vector and gets a LlamaIndex
-- node id and metadata, so it stays searchable; the docstore starts empty, so a file is re-indexed once on its next
-- `iqts kb add` (notes and journal entries once when they are next written).

-- kb_documents: where a document came from (files, notes, the journal, the generated starter documents) and a new
-- kind, `glossary`, for the metrics glossary.
ALTER TABLE kb_documents ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'file'
    CHECK (origin IN ('file', 'note', 'journal', 'starter'));
UPDATE kb_documents SET origin = CASE
    WHEN source LIKE 'journal://%' THEN 'journal'
    WHEN source LIKE 'starter://%' THEN 'starter'
    WHEN source ~ '^[a-z][a-z0-9+.-]*://' THEN 'note'
    ELSE 'file' END;
ALTER TABLE kb_documents DROP CONSTRAINT IF EXISTS kb_documents_kind_check;
ALTER TABLE kb_documents ADD CONSTRAINT kb_documents_kind_check
    CHECK (kind IN ('note', 'strategy', 'report', 'risk_policy', 'journal', 'glossary'));

-- kb_chunks: the nodes of the LlamaIndex vector store (node id, node metadata as JSON).
ALTER TABLE kb_chunks ADD COLUMN IF NOT EXISTS node_id text;
ALTER TABLE kb_chunks ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
UPDATE kb_chunks SET node_id = 'legacy-' || id::text WHERE node_id IS NULL;
UPDATE kb_chunks c SET metadata = jsonb_build_object('section', c.section, 'ord', c.ord, 'title', d.title,
                                                     'source', d.source, 'kind', d.kind)
FROM kb_documents d WHERE d.id = c.document_id AND c.metadata = '{}'::jsonb;
ALTER TABLE kb_chunks ALTER COLUMN node_id SET NOT NULL;
ALTER TABLE kb_chunks ADD CONSTRAINT kb_chunks_node_id_key UNIQUE (node_id);

-- The ingestion pipeline's docstore (a LlamaIndex key-value store): document hashes and reference-document info,
-- written in the same transaction as the document's chunks.
CREATE TABLE IF NOT EXISTS kb_docstore (
    collection text NOT NULL,
    key        text NOT NULL,
    value      jsonb NOT NULL,
    PRIMARY KEY (collection, key)
);
