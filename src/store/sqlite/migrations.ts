// Versioned schema of the SQLite store. Append new versions; never edit an applied one.

export const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  username      TEXT NOT NULL,
  username_key  TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  is_admin      INTEGER NOT NULL DEFAULT 0,
  locked_until  INTEGER,
  created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
  id                TEXT PRIMARY KEY,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  device            TEXT,
  ip                TEXT,
  user_agent        TEXT,
  created_at        INTEGER NOT NULL,
  last_seen_at      INTEGER NOT NULL,
  expires_at        INTEGER NOT NULL,
  access_expires_at INTEGER NOT NULL,
  revoked_at        INTEGER
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
  hash           BLOB PRIMARY KEY,
  session_id     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  created_at     INTEGER NOT NULL,
  used_at        INTEGER,
  successor_hash BLOB
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

CREATE TABLE signing_keys (
  kid                TEXT PRIMARY KEY,
  alg                TEXT NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('next', 'active', 'verify', 'disabled')),
  public_jwk         TEXT NOT NULL,
  sealed_private_key BLOB NOT NULL,
  created_at         INTEGER NOT NULL,
  activated_at       INTEGER,
  retired_at         INTEGER
);

CREATE TABLE revocation_head (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  log_id   TEXT NOT NULL,
  last_seq INTEGER NOT NULL
);

CREATE TABLE revocations (
  seq        INTEGER PRIMARY KEY,
  kind       TEXT NOT NULL CHECK (kind IN ('session', 'key')),
  target     TEXT NOT NULL,
  expires_at INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations(expires_at);

CREATE TABLE audit_events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at         INTEGER NOT NULL,
  type       TEXT NOT NULL,
  actor      TEXT,
  subject    TEXT,
  ip         TEXT,
  user_agent TEXT,
  detail     TEXT
);
CREATE INDEX audit_events_by_time ON audit_events(at);
`,
  },
  {
    version: 2,
    sql: `
CREATE TABLE clients (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  secret_hash BLOB NOT NULL,
  created_at  INTEGER NOT NULL
);

CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

CREATE TABLE throttles (
  key           TEXT PRIMARY KEY,
  failures      INTEGER NOT NULL,
  blocked_until INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL
);
CREATE INDEX throttles_by_expiry ON throttles(expires_at);
`,
  },
];
