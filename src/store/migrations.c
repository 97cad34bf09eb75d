/*
 * store/migrations.c — the numbered schema migrations, oldest first.
 *
 * Migration N (1-based) brings the schema from version N-1 to N; the version
 * is kept in PRAGMA user_version. Each runs in one transaction at open.
 * Rules: append new migrations; never edit or reorder a shipped one.
 */
#include "store/store_impl.h"

const m2p_migration m2p_store_migrations[] = {
    {"tracks and analyses",
     "CREATE TABLE tracks ("
     "  id INTEGER PRIMARY KEY,"
     "  kind TEXT NOT NULL,"
     "  source TEXT NOT NULL,"
     "  video_id TEXT NOT NULL DEFAULT '',"
     "  title TEXT NOT NULL DEFAULT '',"
     "  uploader TEXT NOT NULL DEFAULT '',"
     "  duration_s REAL NOT NULL DEFAULT 0,"
     "  content_hash TEXT NOT NULL UNIQUE,"
     "  path TEXT NOT NULL,"
     "  created_at REAL NOT NULL,"
     "  updated_at REAL NOT NULL"
     ");"
     "CREATE INDEX tracks_video_id ON tracks(video_id);"
     "CREATE TABLE analyses ("
     "  content_hash TEXT NOT NULL,"
     "  analyzer_version TEXT NOT NULL,"
     "  features_json TEXT NOT NULL,"
     "  created_at REAL NOT NULL,"
     "  PRIMARY KEY (content_hash, analyzer_version)"
     ");"},
};

const int m2p_store_n_migrations = (int)(sizeof m2p_store_migrations / sizeof m2p_store_migrations[0]);
