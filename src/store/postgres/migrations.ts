// Versioned schema of the PostgreSQL store, the same tables and meaning as the SQLite one.
// Append new versions; never edit an applied one. Times are ms since the epoch (BIGINT).
//
// Free-form JSON (audit detail) is TEXT rather than JSONB: JSONB refuses the \u0000 escape, and
// a client-supplied string must never turn an audit write into an error.

export const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  username      TEXT NOT NULL,
  username_key  TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  is_admin      BOOLEAN NOT NULL DEFAULT false,
  locked_until  BIGINT,
  created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
  id                TEXT PRIMARY KEY,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  device            TEXT,
  ip                TEXT,
  user_agent        TEXT,
  created_at        BIGINT NOT NULL,
  last_seen_at      BIGINT NOT NULL,
  expires_at        BIGINT NOT NULL,
  access_expires_at BIGINT NOT NULL,
  revoked_at        BIGINT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
  hash           BYTEA PRIMARY KEY,
  session_id     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  created_at     BIGINT NOT NULL,
  used_at        BIGINT,
  successor_hash BYTEA
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

CREATE TABLE signing_keys (
  kid                TEXT PRIMARY KEY,
  alg                TEXT NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('next', 'active', 'verify', 'disabled')),
  public_jwk         TEXT NOT NULL,
  sealed_private_key BYTEA NOT NULL,
  created_at         BIGINT NOT NULL,
  activated_at       BIGINT,
  retired_at         BIGINT
);

CREATE TABLE revocation_head (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  log_id   TEXT NOT NULL,
  last_seq BIGINT NOT NULL
);

-- seq is assigned from revocation_head inside the revoking transaction, never by a sequence:
-- a sequence number can commit after a higher one, and a reader would step past it for good.
CREATE TABLE revocations (
  seq        BIGINT PRIMARY KEY,
  kind       TEXT NOT NULL CHECK (kind IN ('session', 'key')),
  target     TEXT NOT NULL,
  expires_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations(expires_at);

CREATE TABLE audit_events (
  id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         BIGINT NOT NULL,
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
  secret_hash BYTEA NOT NULL,
  created_at  BIGINT NOT NULL
);

CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);

CREATE TABLE throttles (
  key           TEXT PRIMARY KEY,
  failures      INTEGER NOT NULL,
  blocked_until BIGINT NOT NULL,
  expires_at    BIGINT NOT NULL
);
CREATE INDEX throttles_by_expiry ON throttles(expires_at);
`,
  },
];
