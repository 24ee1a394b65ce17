"""SQLite schema of the archive, versioned through PRAGMA user_version.

Each entry of MIGRATIONS moves the database from version i to i+1. Never edit a
migration that has shipped: append a new one.
"""

MIGRATIONS: list[str] = [
    # 0 -> 1: runs, programs, events
    """
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        task          TEXT NOT NULL,
        task_path     TEXT NOT NULL,
        config        TEXT NOT NULL,
        status        TEXT NOT NULL,
        target_score  REAL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );

    CREATE TABLE programs (
        id              INTEGER PRIMARY KEY,
        run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        parent_id       INTEGER REFERENCES programs(id),
        island          INTEGER NOT NULL DEFAULT 0,
        generation      INTEGER NOT NULL,
        code            TEXT NOT NULL,
        code_hash       TEXT NOT NULL,
        diff            TEXT,
        patch_type      TEXT NOT NULL,
        description     TEXT,
        status          TEXT NOT NULL,
        correct         INTEGER,
        combined_score  REAL,
        public_metrics  TEXT,
        private_metrics TEXT,
        text_feedback   TEXT,
        error           TEXT,
        stdout_tail     TEXT,
        stderr_tail     TEXT,
        eval_seconds    REAL,
        cost_usd        REAL NOT NULL DEFAULT 0,
        embedding       BLOB,
        created_at      REAL NOT NULL,
        evaluated_at    REAL
    );
    CREATE INDEX programs_by_hash ON programs(run_id, code_hash);
    CREATE INDEX programs_by_score ON programs(run_id, combined_score DESC, id);
    CREATE INDEX programs_by_parent ON programs(parent_id);
    CREATE INDEX programs_by_status ON programs(run_id, status);

    CREATE TABLE events (
        id         INTEGER PRIMARY KEY,
        run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        ts         REAL NOT NULL,
        kind       TEXT NOT NULL,
        data       TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events(run_id, id);

    CREATE TABLE notes (
        run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    """,
    # 1 -> 2: per-island and score-order indexes, model calls
    """
    CREATE INDEX programs_by_island ON programs(run_id, island, id);
    CREATE INDEX programs_by_sort_key ON programs(run_id, COALESCE(combined_score, -1.0e308) DESC, id);

    CREATE TABLE llm_calls (
        id                INTEGER PRIMARY KEY,
        run_id            INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        model             TEXT NOT NULL,
        purpose           TEXT NOT NULL,
        prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd          REAL NOT NULL DEFAULT 0,
        seconds           REAL NOT NULL DEFAULT 0,
        ok                INTEGER NOT NULL,
        error             TEXT,
        program_id        INTEGER,
        ts                REAL NOT NULL
    );
    CREATE INDEX llm_calls_by_run ON llm_calls(run_id, id);
    """,
    # 2 -> 3: the fingerprint of a program's canonical form (tools/canonical.py); NULL for older programs
    """
    ALTER TABLE programs ADD COLUMN fingerprint TEXT;
    CREATE INDEX programs_by_fingerprint ON programs(run_id, fingerprint);
    """,
    # 3 -> 4: why a run has its status (finished: which budget; failed: the cause)
    """
    ALTER TABLE runs ADD COLUMN status_reason TEXT;
    """,
    # 4 -> 5: the operator (model or offline operator) a program's proposal named; filled in from the
    # proposals' events for programs stored before
    """
    ALTER TABLE programs ADD COLUMN operator TEXT;
    UPDATE programs SET operator = proposed.operator
    FROM (SELECT json_extract(data, '$.program') AS program_id, json_extract(data, '$.operator') AS operator
          FROM events WHERE kind = 'proposed' AND json_valid(data)) AS proposed
    WHERE programs.id = proposed.program_id AND proposed.operator IS NOT NULL;
    """,
    # 5 -> 6: island membership as data. A program is a member of the island it was proposed on (programs.island,
    # which no longer changes) until a migration moves it; the seed is one program, a member of every island.
    # The seed's row copies of older archives fold into it: their children re-parented, their islands seats.
    """
    CREATE TABLE island_members (  -- the key's columns first: SQLite 3.40's integrity_check misreads others
        program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
        island     INTEGER NOT NULL,
        run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        PRIMARY KEY (program_id, island)
    ) WITHOUT ROWID;
    CREATE INDEX island_members_by_island ON island_members(run_id, island, program_id);
    CREATE TRIGGER program_joins_its_island AFTER INSERT ON programs BEGIN
        INSERT INTO island_members(run_id, island, program_id) VALUES (NEW.run_id, NEW.island, NEW.id);
    END;

    CREATE TEMP TABLE seed_copies AS
        SELECT c.id AS copy_id, s.seed_id, c.island, c.run_id FROM programs c
        JOIN (SELECT run_id, MIN(id) AS seed_id FROM programs WHERE parent_id IS NULL GROUP BY run_id) AS s
          ON c.run_id = s.run_id
        WHERE c.parent_id IS NULL AND c.id <> s.seed_id;
    UPDATE programs SET parent_id = (SELECT seed_id FROM seed_copies WHERE copy_id = programs.parent_id)
        WHERE parent_id IN (SELECT copy_id FROM seed_copies);
    INSERT INTO island_members(run_id, island, program_id)
        SELECT run_id, island, id FROM programs WHERE id NOT IN (SELECT copy_id FROM seed_copies);
    INSERT OR IGNORE INTO island_members(run_id, island, program_id)
        SELECT run_id, island, seed_id FROM seed_copies;
    DELETE FROM programs WHERE id IN (SELECT copy_id FROM seed_copies);
    DROP TABLE seed_copies;
    """,
    # 6 -> 7: a run's programs in id order, for its newest and oldest pages (without it SQLite sorted the run)
    """
    CREATE INDEX programs_by_run ON programs(run_id, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
