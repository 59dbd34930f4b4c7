/**
 * Schema versions, oldest first. Version N is MIGRATIONS[N-1]; applied ones
 * are recorded in schema_migrations. Never edit a shipped entry: append a new
 * one (an existing database only runs the entries after its version).
 *
 * Conventions: times are INTEGER epoch ms; JSON columns hold text written by
 * the store; booleans are INTEGER 0/1.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password      TEXT,                     -- JSON PasswordCredential, or NULL
    must_change   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  );

  CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    user          TEXT NOT NULL,
    name          TEXT,
    hash          TEXT NOT NULL,
    scram         TEXT,                     -- JSON ScramSecret, or NULL
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
  );
  CREATE INDEX tokens_user ON tokens (user);

  CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user             TEXT NOT NULL,
    target           TEXT NOT NULL,
    segment          TEXT NOT NULL,
    protocol         TEXT NOT NULL,
    client_addr      TEXT NOT NULL,
    broker_id        TEXT NOT NULL,
    rule             TEXT,
    access           TEXT NOT NULL,
    grant_id         TEXT,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    status           TEXT NOT NULL,
    end_reason       TEXT,
    recording_path   TEXT,
    recording_sha256 TEXT,
    recording_bytes  INTEGER,
    meta             TEXT NOT NULL DEFAULT '{}'
  );
  -- (started_at, id) is the keyset for listSessions' newest-first pages.
  CREATE INDEX sessions_started ON sessions (started_at, id);
  CREATE INDEX sessions_user ON sessions (user, started_at);
  CREATE INDEX sessions_target ON sessions (target, started_at);
  CREATE INDEX sessions_status ON sessions (status) WHERE status = 'live';

  -- seq is the rowid: assigned by appendAudit inside its write transaction.
  CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    session_id  TEXT,
    target      TEXT,
    data        TEXT NOT NULL,              -- canonical JSON, exactly the bytes that were hashed
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
  );
  -- An index on session_id also orders by seq (the rowid) within a session.
  CREATE INDEX audit_session ON audit_events (session_id) WHERE session_id IS NOT NULL;
  CREATE INDEX audit_kind ON audit_events (kind);

  -- What appendAudit last wrote, updated in the same transaction. It makes
  -- auditHead() O(1) and lets appendAudit refuse to chain onto a tail that
  -- was changed behind its back.
  CREATE TABLE audit_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    count      INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    last_hash  TEXT NOT NULL
  );
  INSERT INTO audit_state (id, count, last_seq, last_hash)
    VALUES (1, 0, 0, '0000000000000000000000000000000000000000000000000000000000000000');

  -- Substring search over the string values of session events (listSessions q).
  -- trigram: MATCH on a quoted phrase is a case-insensitive substring match.
  -- rowid = audit_events.seq. A search index only, not covered by the chain,
  -- and filled behind the hot path (audit-worker.ts): indexed_upto = last seq seen.
  CREATE VIRTUAL TABLE audit_fts USING fts5 (text, session_id UNINDEXED, tokenize = 'trigram');
  CREATE TABLE search_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto  INTEGER NOT NULL
  );
  INSERT INTO search_state (id, indexed_upto) VALUES (1, 0);

  CREATE TABLE access_requests (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user               TEXT NOT NULL,
    target             TEXT,
    segment            TEXT NOT NULL,
    duration_ms        INTEGER NOT NULL,
    reason             TEXT NOT NULL,
    state              TEXT NOT NULL,
    approvals_required INTEGER NOT NULL,
    decisions          TEXT NOT NULL DEFAULT '[]',   -- JSON RequestDecision[]
    created_at         INTEGER NOT NULL,
    pending_until      INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    grant_id           TEXT
  );
  CREATE INDEX requests_user ON access_requests (user);
  CREATE INDEX requests_state ON access_requests (state);

  CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    request_id  TEXT,
    user        TEXT NOT NULL,
    target      TEXT,
    segment     TEXT NOT NULL,
    valid_from  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
  );
  CREATE INDEX grants_user ON grants (user, expires_at);

  CREATE TABLE segment_locks (
    segment    TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    locked_by  TEXT NOT NULL,
    locked_at  INTEGER NOT NULL
  );

  -- AUTOINCREMENT: ids are never reused, so a broker's "last seen id" stays valid.
  CREATE TABLE control (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    session_id  TEXT,
    segment     TEXT,
    grant_id    TEXT,
    reason      TEXT NOT NULL
  );
  `,
];
