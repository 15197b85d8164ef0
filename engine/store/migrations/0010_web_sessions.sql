-- Web (inbox) sessions get their own table instead of system_state keys "web_session:<hash>".
-- The browser holds only the signed random session id; the row is keyed by its sha256.
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash    text PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_expires ON web_sessions (expires_at);

-- sessions still valid move over (so nobody is signed out by the upgrade); then the old keys go
INSERT INTO web_sessions (id_hash, user_id, csrf, created_at, expires_at)
SELECT substr(s.key, length('web_session:') + 1), u.id, s.value->>'csrf',
       COALESCE((s.value->>'created')::timestamptz, now()), (s.value->>'expires')::timestamptz
FROM system_state s JOIN users u ON u.id = (s.value->>'uid')::bigint
WHERE s.key LIKE 'web\_session:%' AND (s.value->>'expires')::timestamptz > now()
ON CONFLICT (id_hash) DO NOTHING;
DELETE FROM system_state WHERE key LIKE 'web\_session:%';
