-- Issue 9: one device can be revoked; install codes know what they are for;
-- API tokens end with the named account that made them.

-- A revoked device keeps its row (its events still name it, and its id is
-- never reused) but no token: `token_hash` becomes 'revoked:<id>', which no
-- token hashes to.
ALTER TABLE devices ADD COLUMN revoked_at INTEGER;

-- 'setup': for `ccgate setup` (the agent API); 'hook': for migrating a
-- claude-code-limiter machine (the hook API). Codes made before are setup codes.
ALTER TABLE install_codes ADD COLUMN kind TEXT NOT NULL DEFAULT 'setup'
    CHECK (kind IN ('setup', 'hook'));

-- The named account whose login (or whose token) made the token; NULL: the
-- built-in admin. Deleting the account revokes its tokens.
ALTER TABLE api_tokens ADD COLUMN account_id INTEGER;
UPDATE api_tokens SET account_id =
    (SELECT id FROM accounts WHERE 'account:' || accounts.username = api_tokens.created_by)
    WHERE created_by LIKE 'account:%';
-- Tokens of accounts deleted before this version end now.
UPDATE api_tokens SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
    WHERE revoked_at IS NULL AND created_by LIKE 'account:%' AND account_id IS NULL;
CREATE INDEX api_tokens_account ON api_tokens (account_id);
