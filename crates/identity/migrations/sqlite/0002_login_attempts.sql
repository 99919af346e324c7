-- Login throttling reserves each attempt here *before* the password is checked, so guesses sent in
-- parallel see each other (security finding F1: counting past audit rows was check-then-act).
-- An attempt is 'pending' until checked, then 'failed', 'refused' (right password, but the account
-- may not log in) or 'succeeded'. Pending and failed attempts count against the limits.
CREATE TABLE login_attempts (
    id           BLOB PRIMARY KEY,
    email        TEXT NOT NULL,
    ip           TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('pending', 'failed', 'refused', 'succeeded'))
);
CREATE INDEX login_attempts_by_email ON login_attempts (email, attempted_at);
CREATE INDEX login_attempts_by_ip ON login_attempts (ip, attempted_at);
CREATE INDEX login_attempts_by_time ON login_attempts (attempted_at);

-- One row per throttled key ('account:<email>', 'ip:<address>'). A reservation writes its keys'
-- rows first, which serialises reservations for the same account or address until commit.
CREATE TABLE login_throttle_locks (
    key        TEXT PRIMARY KEY,
    touched_at TEXT NOT NULL
);
