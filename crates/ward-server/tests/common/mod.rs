//! Helpers shared by the integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

/// A PostgreSQL URL whose connections see only a fresh, empty schema.
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
    aws_lc_rs::rand::fill(&mut raw).unwrap();
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
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}
