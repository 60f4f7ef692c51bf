import GRDB

/// Versioned schema. Never edit a shipped migration: add a new one.
///
/// Tables (v1; captions and boxes as of `v_annotation_packs`):
/// - images(id, file_name, width, height, source)            — COCO images, id = COCO image id
/// - image_captions(image_id, count, packed)                 — an image's captions, packed in file order
/// - categories(id, name, supercategory)
/// - image_boxes(image_id, count, drawable, packed)          — an image's boxes (COCO [x, y, w, h] in pixels)
///   (`AnnotationPack` is the packed layout, `AnnotationStore` reads and writes it; v1 had one
///   `captions` / `boxes` row per annotation, converted by the migration)
/// - meta(key, value)                                     — e.g. image_root
/// - ingests(...)                                            — one row per ingested file, with counts
/// - runs(...)                                               — one generate invocation
/// - requests(...)                                           — one chat call, keyed by the hash of what is sent
/// - samples(...)                                            — parsed outcome of one request
public enum ForgeSchema {
    public static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
            CREATE TABLE images (
                id INTEGER PRIMARY KEY,
                file_name TEXT NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                source TEXT NOT NULL DEFAULT ''
            );
            CREATE TABLE captions (
                id INTEGER PRIMARY KEY,
                image_id INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                caption TEXT NOT NULL
            );
            CREATE INDEX captions_by_image ON captions(image_id, seq);
            CREATE TABLE categories (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                supercategory TEXT NOT NULL DEFAULT ''
            );
            CREATE TABLE boxes (
                id INTEGER PRIMARY KEY,
                image_id INTEGER NOT NULL,
                category_id INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
                iscrowd INTEGER NOT NULL DEFAULT 0,
                area REAL NOT NULL DEFAULT 0
            );
            CREATE INDEX boxes_by_image ON boxes(image_id, seq);
            CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            CREATE TABLE ingests (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                path TEXT NOT NULL,
                kind TEXT NOT NULL,              -- captions | instances
                size_bytes INTEGER NOT NULL,
                images INTEGER NOT NULL, captions INTEGER NOT NULL, boxes INTEGER NOT NULL,
                categories INTEGER NOT NULL,
                skipped_json TEXT NOT NULL,      -- {"reason": count}
                seconds REAL NOT NULL,
                finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            );
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                type TEXT NOT NULL,
                base_url TEXT NOT NULL,
                model TEXT NOT NULL,
                params_json TEXT NOT NULL,
                requested INTEGER NOT NULL,
                started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                finished_at TEXT,
                totals_json TEXT
            );
            CREATE TABLE requests (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                cache_key TEXT NOT NULL UNIQUE,  -- sha256 of model + messages + sampling params
                run_id INTEGER REFERENCES runs(id),
                image_id INTEGER NOT NULL,
                type TEXT NOT NULL,
                model TEXT NOT NULL,
                context TEXT NOT NULL,
                body_json TEXT NOT NULL,         -- exactly what is POSTed (no key)
                status TEXT NOT NULL,            -- pending | in_flight | done | failed
                attempts INTEGER NOT NULL DEFAULT 0,
                http_status INTEGER,
                error TEXT,
                response_text TEXT,
                finish_reason TEXT,
                prompt_tokens INTEGER, completion_tokens INTEGER,
                latency_ms REAL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            );
            CREATE INDEX requests_by_type ON requests(type, status);
            CREATE INDEX requests_by_image ON requests(image_id, type);
            CREATE TABLE samples (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                request_id INTEGER NOT NULL UNIQUE REFERENCES requests(id),
                image_id INTEGER NOT NULL,
                type TEXT NOT NULL,
                status TEXT NOT NULL,            -- ok | parse_failed | truncated
                reason TEXT,                     -- why not ok
                conversations_json TEXT,         -- [{"from": "human"|"gpt", "value": ...}]
                turns INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            );
            CREATE INDEX samples_by_type ON samples(type, status);
            """)
        }
        registerGenerationJournal(&m)
        // Pipelines (issue 4): stage runs with fingerprints, cached file digests, image choices per
        // type, filter rejections with reasons, exact-hash and MinHash-LSH dedup state.
        m.registerMigration("v_pipeline_dedup") { db in
            try db.execute(sql: """
            CREATE TABLE pipeline_stage_runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                pipeline TEXT NOT NULL,
                stage TEXT NOT NULL,
                kind TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                components_json TEXT NOT NULL,   -- what the fingerprint was made of, for "why it reruns"
                status TEXT NOT NULL,            -- running | done | incomplete | failed
                message TEXT,
                summary_json TEXT,
                seconds REAL,
                started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                finished_at TEXT
            );
            CREATE INDEX pipeline_stage_runs_by_stage ON pipeline_stage_runs(pipeline, stage, id);
            CREATE TABLE pipeline_file_digests (
                path TEXT PRIMARY KEY,
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                digest TEXT NOT NULL
            );
            CREATE TABLE pipeline_image_choices (
                stage TEXT NOT NULL,
                type TEXT NOT NULL,
                image_id INTEGER NOT NULL,
                rank INTEGER NOT NULL,
                PRIMARY KEY (stage, type, image_id)
            );
            CREATE INDEX pipeline_image_choices_by_rank ON pipeline_image_choices(stage, type, rank);
            CREATE TABLE quality_rejections (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                sample_id INTEGER NOT NULL REFERENCES samples(id),
                stage TEXT NOT NULL,
                filter TEXT NOT NULL,
                reason TEXT NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            );
            CREATE INDEX quality_rejections_by_sample ON quality_rejections(sample_id);
            CREATE INDEX quality_rejections_by_stage ON quality_rejections(stage, filter);
            CREATE TABLE dedup_state (
                stage TEXT PRIMARY KEY,
                params_hash TEXT NOT NULL
            );
            CREATE TABLE dedup_exact (
                scope TEXT NOT NULL,
                norm_hash TEXT NOT NULL,
                sample_id INTEGER NOT NULL,
                UNIQUE (scope, norm_hash)
            );
            CREATE INDEX dedup_exact_by_sample ON dedup_exact(sample_id);
            CREATE TABLE dedup_bands (
                scope TEXT NOT NULL,
                sample_id INTEGER NOT NULL,
                bands BLOB NOT NULL,             -- the kept sample's LSH band hashes, UInt64 little-endian
                PRIMARY KEY (scope, sample_id)
            );
            CREATE INDEX dedup_bands_by_sample ON dedup_bands(sample_id);
            CREATE TABLE dedup_decisions (
                stage TEXT NOT NULL,
                sample_id INTEGER NOT NULL,
                scope TEXT NOT NULL,
                decision TEXT NOT NULL,          -- kept | exact | near
                duplicate_of INTEGER,
                jaccard REAL,
                PRIMARY KEY (stage, sample_id)
            );
            CREATE INDEX dedup_decisions_by_original ON dedup_decisions(duplicate_of);
            -- "the newest sample of this type for this image" (superseding after a prompt change)
            CREATE INDEX samples_by_type_image ON samples(type, image_id, request_id);
            """)
        }
        registerRequestTemplates(&m)
        registerAnnotationPacks(&m)
        return m
    }
}

extension ForgeSchema {
    /// Generation at scale (issue 3): per-run totals as columns, failure classes and server
    /// request ids on requests, and the Batch API journal (which request went to which file).
    /// Registered after every earlier migration by `ForgeSchema.migrator`.
    static func registerGenerationJournal(_ m: inout DatabaseMigrator) {
        m.registerMigration("v_gen_journal") { db in
            try db.execute(sql: """
            CREATE TABLE batch_files (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                path TEXT NOT NULL,
                type TEXT NOT NULL,
                model TEXT NOT NULL,
                seed INTEGER NOT NULL,
                lines INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
            );
            ALTER TABLE runs ADD COLUMN status TEXT NOT NULL DEFAULT 'running';  -- running | finished | stopped
            ALTER TABLE runs ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN ok INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN parse_failed INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN cost_usd REAL;
            ALTER TABLE runs ADD COLUMN stopped_reason TEXT;
            ALTER TABLE requests ADD COLUMN error_class TEXT;
            ALTER TABLE requests ADD COLUMN server_request_id TEXT;
            ALTER TABLE requests ADD COLUMN custom_id TEXT;        -- Batch API custom_id once exported
            ALTER TABLE requests ADD COLUMN batch_file_id INTEGER REFERENCES batch_files(id);
            CREATE UNIQUE INDEX requests_by_custom_id ON requests(custom_id) WHERE custom_id IS NOT NULL;
            """)
        }
    }
}
