-- The knowledge base (knowledge/): documents (files and notes) and their chunks with 384-d embeddings
-- (all-MiniLM-L6-v2 by default) and a generated English full-text vector for hybrid retrieval.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS kb_documents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL UNIQUE,          -- absolute file path, or a note URI (note://..., journal://...)
    title           text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('note', 'strategy', 'report', 'risk_policy', 'journal')),
    content_hash    text NOT NULL,                 -- sha256 of the file bytes / the note's content
    embedding_model text NOT NULL,                 -- vectors of different models are never compared
    chunking        text NOT NULL,                 -- chunker version and parameters: a change re-indexes
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS kb_documents_kind ON kb_documents (kind);

-- kind and embedding_model are copied from the document so that the vector search filters on the table that the
-- HNSW index scans (pgvector's iterative index scan applies such filters inside the scan).
CREATE TABLE IF NOT EXISTS kb_chunks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id     bigint NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    ord             integer NOT NULL,
    kind            text NOT NULL,
    embedding_model text NOT NULL,
    section         text NOT NULL DEFAULT '',          -- Markdown heading path ("A > B") or "page N"
    text            text NOT NULL,
    embedding       vector(384) NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', section), 'A') || setweight(to_tsvector('english', text), 'B')
                    ) STORED,
    UNIQUE (document_id, ord)
);
CREATE INDEX IF NOT EXISTS kb_chunks_embedding_hnsw ON kb_chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX IF NOT EXISTS kb_chunks_tsv ON kb_chunks USING gin (tsv);
