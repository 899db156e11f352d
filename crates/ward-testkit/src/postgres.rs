//! PostgreSQL for tests: a fresh, empty schema per test on the server named
//! by `WARD_TEST_POSTGRES_URL`.
//!
//! Without the variable the PostgreSQL half of a test skips on a laptop; with
//! `CI=true` it fails instead, because a test that silently skips in CI is a
//! defect.

/// A PostgreSQL URL whose connections see only a fresh, empty schema, or
/// `None` (skip) when `WARD_TEST_POSTGRES_URL` is unset outside CI.
///
/// # Panics
/// When `CI=true` and the variable is unset, or the server is unreachable.
pub async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("WARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "WARD_TEST_POSTGRES_URL is not set but CI=true: PostgreSQL tests must run in CI"
        );
        eprintln!("skipping PostgreSQL half: WARD_TEST_POSTGRES_URL is not set");
        return None;
    };
    let mut raw = [0u8; 8];
    aws_lc_rs::rand::fill(&mut raw).expect("random schema name");
    let schema = format!(
        "ward_t_{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base)
        .await
        .expect("connect to WARD_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create a test schema");
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// [`postgres_url`] for synchronous tests.
pub fn postgres_url_blocking() -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for test setup")
        .block_on(postgres_url())
}
