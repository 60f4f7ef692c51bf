import GRDB

extension ForgeSchema {
    /// Request bodies stored once per run instead of once per request. Every body of a type's
    /// run is `prefix + escaped(context) + suffix` (system message, few-shot examples and
    /// sampling parameters are shared): the prefix and suffix go into `request_templates`, the
    /// request keeps its `context` and points at its template, and `body_json` is left empty.
    /// A 158K run stored ~10 KB per request before (1.6 GB); now the context alone.
    /// Rows written before this migration (or whose body could not be templated) keep the full
    /// `body_json` and no `template_id`.
    static func registerRequestTemplates(_ m: inout DatabaseMigrator) {
        m.registerMigration("v_request_templates") { db in
            try db.execute(sql: """
            CREATE TABLE request_templates (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                digest TEXT NOT NULL UNIQUE,     -- sha256 of prefix, NUL, suffix
                prefix BLOB NOT NULL,            -- body bytes before the escaped context
                suffix BLOB NOT NULL             -- body bytes after it
            );
            ALTER TABLE requests ADD COLUMN template_id INTEGER REFERENCES request_templates(id);
            """)
        }
    }
}
