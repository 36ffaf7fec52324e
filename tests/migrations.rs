//! The two migration folders describe one schema: `migrations/sqlite` and `migrations/postgres`
//! must give every table the same columns. Both are applied to real databases and their
//! catalogues compared — SQLite always, PostgreSQL when `LOA_TEST_POSTGRES_URL` is set (CI).

use std::collections::BTreeMap;

use loa::store::{Backend, Db};
use sqlx::{Executor, Row};

type Schema = BTreeMap<String, Vec<(String, bool)>>;

/// Each table of the database with its columns (name, nullable), in name order; sqlx's own
/// bookkeeping left out.
async fn schema(db: &Db) -> Schema {
    let tables: Vec<String> = match db.backend {
        Backend::Sqlite => sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        ),
    }
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get(0).unwrap())
    .filter(|t: &String| !t.starts_with("_sqlx"))
    .collect();
    let mut out = Schema::new();
    for table in tables {
        let mut columns: Vec<(String, bool)> = match db.backend {
            Backend::Sqlite => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT name, \"notnull\" = 0 AND pk = 0 FROM pragma_table_info('{table}')"
            )))
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get::<i64, _>(1).unwrap() != 0))
            .collect(),
            Backend::Postgres => sqlx::query(
                "SELECT column_name::text, CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END::int8 FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1",
            )
            .bind(&table)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get::<i64, _>(1).unwrap() != 0))
            .collect(),
        };
        columns.sort();
        out.insert(table, columns);
    }
    out
}

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/loa.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    schema(&db).await
}

#[tokio::test]
async fn sqlite_has_every_table_loa_writes() {
    let schema = sqlite_schema().await;
    for table in [
        "occurrences",
        "occurrence_bodies",
        "deliveries",
        "delivery_attempts",
        "contents",
        "content_texts",
        "content_versions",
        "reach",
        "reach_counts",
    ] {
        assert!(schema.contains_key(table), "{table}: {schema:#?}");
    }
    assert!(
        !schema["occurrences"]
            .iter()
            .any(|(c, _)| c.starts_with("body_")),
        "bodies live in occurrence_bodies, keyed by channel"
    );
}

#[tokio::test]
async fn sqlite_and_postgresql_migrations_give_the_same_columns() {
    let Ok(admin) = std::env::var("LOA_TEST_POSTGRES_URL") else {
        eprintln!("LOA_TEST_POSTGRES_URL is not set: PostgreSQL is compared in CI");
        return;
    };
    sqlx::any::install_default_drivers();
    let name = format!("loa_test_migrations_{}", std::process::id());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .await
    .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let pg = Db::connect(&format!("{base}/{name}")).await.unwrap();
    pg.migrate().await.unwrap();
    let postgres = schema(&pg).await;
    pg.close().await;
    let sqlite = sqlite_schema().await;
    assert!(postgres.len() >= 20, "{postgres:#?}");
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, columns) in &sqlite {
        assert_eq!(
            columns, &postgres[table],
            "columns of {table} (name, nullable)"
        );
    }
}
