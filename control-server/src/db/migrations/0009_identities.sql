-- Single sign-on: the identities that signed in through the OIDC provider,
-- the logins under way, and sessions that may belong to an identity.

-- One row per (issuer, subject) that ever signed in. `group_role` is the
-- role the provider's groups gave at the last sign-in or re-check (NULL:
-- none); `role_override` one an admin set by hand (wins over groups);
-- `user_id` the ccgate person this identity is.
CREATE TABLE identities (
    id             INTEGER PRIMARY KEY,
    issuer         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    email          TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    name           TEXT,
    groups         TEXT NOT NULL DEFAULT '[]',
    group_role     TEXT CHECK (group_role IN ('admin', 'viewer', 'member')),
    role_override  TEXT CHECK (role_override IN ('admin', 'viewer', 'member')),
    user_id        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE UNIQUE INDEX identities_user ON identities (user_id) WHERE user_id IS NOT NULL;

-- A login sent to the provider and not back yet: used once (the state is
-- deleted when the callback arrives), bound to the browser that started it
-- (`browser_hash`: SHA-256 of a cookie only that browser holds).
CREATE TABLE oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT,
    expires_at    INTEGER NOT NULL
);

-- The person's e-mail, which an identity's verified e-mail may match.
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE) WHERE email IS NOT NULL;

-- Sessions gain the member role and identities (a CHECK cannot be altered
-- in SQLite: the table is made anew, which signs everybody out once).
DROP TABLE sessions;
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    account_id    INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    identity_id   INTEGER REFERENCES identities (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer', 'member')),
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    -- The provider's refresh token, sealed; the session is re-checked with
    -- it at `recheck_at`.
    refresh_token BLOB,
    recheck_at    INTEGER
);
CREATE INDEX sessions_recheck ON sessions (recheck_at) WHERE recheck_at IS NOT NULL;
