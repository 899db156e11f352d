//! One conformance suite, run against both backends: SQLite in a temp dir,
//! and PostgreSQL at `WARD_TEST_POSTGRES_URL` (each test in a fresh schema).
//! Without the variable the PostgreSQL half skips on a laptop, but fails
//! when `CI=true`: a test that silently skips in CI is a defect.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::Duration;

use ward_core::{AgentName, TrustDomain};
use ward_server::store::{
    AgentAttributes, AgentStatus, AgentUpdate, AuthorityOp, AuthorityRow, AuthorityState, Backend,
    ChangeKind, IssuedCert, RevocationTarget, Store, StoreError,
};

const NOW: i64 = 1_800_000_000;

struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ward.db").display());
    Db {
        store: Store::open(&url).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Option<Db> {
    let url = common::postgres_url().await?;
    Some(Db {
        store: Store::open(&url).await.unwrap(),
        url,
        _dir: None,
    })
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::sqlite().await;
                    assert_eq!(db.store.backend(), super::Backend::Sqlite);
                    super::$name(db).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = super::postgres().await {
                        assert_eq!(db.store.backend(), super::Backend::Postgres);
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    agents_register_list_update,
    lifecycle_rules,
    join_tokens_are_single_use_and_expire,
    join_tokens_race_has_one_winner,
    revocation_by_agent_and_serial,
    certificates_and_admins,
    change_log_resumes_from_any_revision,
    durable_across_reopen,
    ca_authority_lifecycle,
);

fn td() -> TrustDomain {
    TrustDomain::new("ward.test").unwrap()
}

fn name(s: &str) -> AgentName {
    AgentName::new(s).unwrap()
}

async fn agents_register_list_update(db: Db) {
    let s = &db.store;
    assert_eq!(s.revision().await.unwrap(), 0);
    let attrs = AgentAttributes {
        team: Some("research".into()),
        risk_tier: Some("high".into()),
        labels: [("env".to_owned(), "prod".to_owned())].into(),
        ..AgentAttributes::default()
    };
    let a = s
        .register_agent(&td(), &name("planner"), attrs.clone(), NOW)
        .await
        .unwrap();
    assert_eq!(a.spiffe_id.as_str(), "spiffe://ward.test/agent/planner");
    assert_eq!(a.status, AgentStatus::Active);
    assert_eq!(a.revision, 1);
    s.register_agent(&td(), &name("researcher"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    let err = s
        .register_agent(&td(), &name("planner"), AgentAttributes::default(), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AgentExists(_)), "{err}");
    // The failed register rolled back its revision bump.
    assert_eq!(s.revision().await.unwrap(), 2);

    let all = s.agents().await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["planner", "researcher"]
    );
    assert_eq!(all[0].attributes, attrs);

    let updated = s
        .update_agent(
            &name("planner"),
            AgentUpdate {
                endpoint: Some(Some("127.0.0.1:15006".into())),
                ..AgentUpdate::default()
            },
            NOW + 5,
        )
        .await
        .unwrap();
    assert_eq!(updated.endpoint.as_deref(), Some("127.0.0.1:15006"));
    assert_eq!(updated.attributes, attrs, "attributes untouched");
    assert_eq!(updated.updated_at, NOW + 5);
    assert_eq!(updated.revision, 3);
    assert_eq!(s.agent(&name("planner")).await.unwrap().unwrap(), updated);
    assert!(s.agent(&name("nobody")).await.unwrap().is_none());
    let err = s
        .update_agent(&name("nobody"), AgentUpdate::default(), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AgentNotFound(_)));
}

async fn lifecycle_rules(db: Db) {
    let s = &db.store;
    s.register_agent(&td(), &name("a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    let q = s
        .set_agent_status(&name("a"), AgentStatus::Quarantined, NOW)
        .await
        .unwrap();
    assert_eq!(q.status, AgentStatus::Quarantined);
    s.set_agent_status(&name("a"), AgentStatus::Active, NOW)
        .await
        .unwrap();
    s.set_agent_status(&name("a"), AgentStatus::Retired, NOW)
        .await
        .unwrap();
    let err = s
        .set_agent_status(&name("a"), AgentStatus::Active, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidTransition {
                from: AgentStatus::Retired,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        s.agent(&name("a")).await.unwrap().unwrap().status,
        AgentStatus::Retired
    );
}

async fn join_tokens_are_single_use_and_expire(db: Db) {
    let s = &db.store;
    s.register_agent(&td(), &name("a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    let token = s.create_join_token(&name("a"), 600, NOW).await.unwrap();
    assert!(token.secret.starts_with("wardjt_"));
    assert!(
        !format!("{token:?}").contains(&token.secret),
        "Debug must redact the secret"
    );
    assert_eq!(
        s.redeem_join_token(&token.secret, NOW + 1)
            .await
            .unwrap()
            .name,
        name("a")
    );
    assert!(matches!(
        s.redeem_join_token(&token.secret, NOW + 2).await,
        Err(StoreError::InvalidToken)
    ));

    let late = s.create_join_token(&name("a"), 600, NOW).await.unwrap();
    assert!(matches!(
        s.redeem_join_token(&late.secret, NOW + 600).await,
        Err(StoreError::InvalidToken)
    ));
    assert!(matches!(
        s.redeem_join_token("wardjt_guess", NOW).await,
        Err(StoreError::InvalidToken)
    ));

    // A token for an agent that was retired after issuance enrolls nothing.
    let t = s.create_join_token(&name("a"), 600, NOW).await.unwrap();
    s.set_agent_status(&name("a"), AgentStatus::Retired, NOW)
        .await
        .unwrap();
    assert!(matches!(
        s.redeem_join_token(&t.secret, NOW + 1).await,
        Err(StoreError::AgentNotActive { .. })
    ));
    assert!(matches!(
        s.create_join_token(&name("a"), 600, NOW).await,
        Err(StoreError::AgentNotActive { .. })
    ));
    assert!(matches!(
        s.create_join_token(&name("ghost"), 600, NOW).await,
        Err(StoreError::AgentNotFound(_))
    ));
}

async fn join_tokens_race_has_one_winner(db: Db) {
    let s = &db.store;
    s.register_agent(&td(), &name("a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    let token = s.create_join_token(&name("a"), 600, NOW).await.unwrap();
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let secret = token.secret.clone();
            tokio::spawn(async move { s.redeem_join_token(&secret, NOW + 1).await.is_ok() })
        })
        .collect();
    let mut wins = 0;
    for a in attempts {
        wins += usize::from(a.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one redeemer may win");
}

async fn revocation_by_agent_and_serial(db: Db) {
    let s = &db.store;
    s.register_agent(&td(), &name("a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    let r = s
        .revoke(&RevocationTarget::Agent(name("a")), "key leaked", NOW)
        .await
        .unwrap();
    assert_eq!(
        s.agent(&name("a")).await.unwrap().unwrap().status,
        AgentStatus::Revoked
    );
    let again = s
        .revoke(&RevocationTarget::Agent(name("a")), "twice", NOW + 9)
        .await
        .unwrap();
    assert_eq!(again, r, "revoking twice keeps the first revocation");
    s.revoke(&RevocationTarget::Serial("00ab".into()), "lost laptop", NOW)
        .await
        .unwrap();
    assert!(s.is_revoked(&name("a"), "ffff").await.unwrap());
    assert!(s.is_revoked(&name("zz"), "00ab").await.unwrap());
    assert!(!s.is_revoked(&name("zz"), "00ac").await.unwrap());
    let all = s.revocations().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].target, RevocationTarget::Agent(name("a")));
    assert_eq!(all[1].target, RevocationTarget::Serial("00ab".into()));
    // Revoked agents get no tokens and cannot come back.
    assert!(matches!(
        s.create_join_token(&name("a"), 60, NOW).await,
        Err(StoreError::AgentNotActive { .. })
    ));
    assert!(
        s.set_agent_status(&name("a"), AgentStatus::Active, NOW)
            .await
            .is_err()
    );
    assert!(matches!(
        s.revoke(&RevocationTarget::Agent(name("ghost")), "x", NOW)
            .await,
        Err(StoreError::AgentNotFound(_))
    ));
}

async fn certificates_and_admins(db: Db) {
    let s = &db.store;
    let cert = IssuedCert {
        serial: "0a1b2c".into(),
        spiffe_id: td().agent_id(&name("a")),
        agent: Some(name("a")),
        issued_at: NOW,
        not_after: NOW + 900,
        authority: Some("0011223344556677".into()),
    };
    s.record_certificate(&cert).await.unwrap();
    assert_eq!(s.certificate("0a1b2c").await.unwrap(), Some(cert.clone()));
    assert!(s.certificate("ffff").await.unwrap().is_none());
    assert!(
        s.record_certificate(&cert).await.is_err(),
        "serials are unique"
    );

    let admin = ward_core::SpiffeId::new("spiffe://ward.test/admin/alice").unwrap();
    assert!(!s.is_admin(&admin).await.unwrap());
    s.add_admin(&admin, "alice", NOW).await.unwrap();
    s.add_admin(&admin, "alice", NOW).await.unwrap();
    assert!(s.is_admin(&admin).await.unwrap());
}

async fn change_log_resumes_from_any_revision(db: Db) {
    let s = &db.store;
    let mut hints = s.subscribe();
    s.register_agent(&td(), &name("a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    s.register_agent(&td(), &name("b"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    s.set_agent_status(&name("a"), AgentStatus::Quarantined, NOW)
        .await
        .unwrap();
    s.revoke(&RevocationTarget::Agent(name("b")), "test", NOW)
        .await
        .unwrap();
    for want in 1..=4 {
        assert_eq!(hints.recv().await.unwrap(), want);
    }
    let all = s.changes_since(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.revision).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(all[2].kind, ChangeKind::Agent);
    assert_eq!(all[2].payload["status"], "quarantined");
    assert_eq!(all[3].kind, ChangeKind::Revocation);
    assert_eq!(all[3].subject, "agent/b");
    let tail = s.changes_since(2, 100).await.unwrap();
    assert_eq!(tail.iter().map(|c| c.revision).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(s.changes_since(2, 1).await.unwrap().len(), 1);
    assert!(s.changes_since(4, 100).await.unwrap().is_empty());
}

async fn durable_across_reopen(db: Db) {
    db.store
        .register_agent(&td(), &name("a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    db.store.close().await;
    let reopened = Store::open(&db.url).await.unwrap();
    assert_eq!(reopened.revision().await.unwrap(), 1);
    assert!(reopened.agent(&name("a")).await.unwrap().is_some());
    // Migrations are idempotent: opening again changes nothing.
    let third = Store::open(&db.url).await.unwrap();
    assert_eq!(third.agents().await.unwrap().len(), 1);
}

/// Two replicas on one PostgreSQL database: a change written through one
/// wakes the other's watchers through LISTEN/NOTIFY.
#[tokio::test]
async fn postgres_replicas_see_each_others_changes() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    let (trigger, watch) = ward_core::drain::channel();
    b.listen(&url, watch).await.unwrap();
    let mut hints = b.subscribe();
    a.register_agent(&td(), &name("through-a"), AgentAttributes::default(), NOW)
        .await
        .unwrap();
    let rev = tokio::time::timeout(Duration::from_secs(10), hints.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(rev, 1);
    let changes = b.changes_since(0, 10).await.unwrap();
    assert_eq!(changes[0].subject, "through-a");
    assert!(b.agent(&name("through-a")).await.unwrap().is_some());
    assert_eq!(
        trigger.drain(Duration::from_secs(5)).await,
        ward_core::drain::Outcome::Complete
    );
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error_without_secrets() {
    let err = Store::open("mysql://root:hunter2@localhost/ward")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("sqlite://") && msg.contains("postgres://"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

fn authority(id: &str) -> AuthorityRow {
    AuthorityRow {
        id: id.to_owned(),
        root_pem: format!("root of {id}"),
        intermediate_pem: format!("intermediate {id}"),
        state: AuthorityState::Staged,
        new_root: false,
        created_at: NOW,
        activated_at: None,
        retired_at: None,
        revision: 0,
    }
}

/// The rotation lifecycle in the store: bootstrap once, stage, activate
/// (the previous one retires gracefully), retire only with no valid
/// certificates outstanding (or forced), each transition one change.
async fn ca_authority_lifecycle(db: Db) {
    let s = &db.store;
    // A certificate from before rotation existed is attributed on bootstrap.
    let cert = |serial: &str, authority: Option<&str>| IssuedCert {
        serial: serial.into(),
        spiffe_id: td().agent_id(&name("a")),
        agent: Some(name("a")),
        issued_at: NOW,
        not_after: NOW + 900,
        authority: authority.map(str::to_owned),
    };
    s.record_certificate(&cert("01", None)).await.unwrap();
    let before = s.revision().await.unwrap();
    assert!(s.bootstrap_authority(&authority("aa")).await.unwrap());
    assert!(!s.bootstrap_authority(&authority("bb")).await.unwrap());
    assert_eq!(
        s.revision().await.unwrap(),
        before,
        "bootstrap is no change"
    );
    assert_eq!(
        s.certificate("01")
            .await
            .unwrap()
            .unwrap()
            .authority
            .as_deref(),
        Some("aa")
    );
    let rows = s.authorities().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, AuthorityState::Active);

    let payload = |rows: &[AuthorityRow]| -> Result<serde_json::Value, String> {
        Ok(serde_json::json!(
            rows.iter()
                .map(|r| format!("{}={}", r.id, r.state))
                .collect::<Vec<_>>()
        ))
    };
    let (rev, rows) = s
        .transition_authority(&AuthorityOp::Stage(authority("bb")), NOW, payload)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let change = s.changes_since(rev - 1, 10).await.unwrap().remove(0);
    assert_eq!(change.kind, ChangeKind::Bundle);
    assert_eq!(
        change.payload,
        serde_json::json!(["aa=active", "bb=staged"])
    );
    // Staging the same id twice is refused.
    assert!(matches!(
        s.transition_authority(&AuthorityOp::Stage(authority("bb")), NOW, payload)
            .await,
        Err(StoreError::Authority(_))
    ));

    let (rev, _) = s
        .transition_authority(&AuthorityOp::Activate("bb".into()), NOW + 1, payload)
        .await
        .unwrap();
    let change = s.changes_since(rev - 1, 10).await.unwrap().remove(0);
    assert_eq!(
        change.payload,
        serde_json::json!(["aa=retiring", "bb=active"])
    );
    s.record_certificate(&cert("02", Some("bb"))).await.unwrap();

    // aa still has a valid certificate: refused unless forced, or later.
    let retire = |force| AuthorityOp::Retire {
        id: "aa".into(),
        force,
    };
    let err = s
        .transition_authority(&retire(false), NOW + 2, payload)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still valid"), "{err}");
    let (_, rows) = s
        .transition_authority(&retire(false), NOW + 901, payload)
        .await
        .unwrap();
    assert_eq!(rows[0].state, AuthorityState::Retired);
    assert_eq!(rows[0].retired_at, Some(NOW + 901));
    // Forbidden transitions.
    for op in [
        AuthorityOp::Activate("aa".into()),
        AuthorityOp::Retire {
            id: "bb".into(),
            force: true,
        },
        AuthorityOp::Activate("zz".into()),
    ] {
        assert!(matches!(
            s.transition_authority(&op, NOW + 902, payload).await,
            Err(StoreError::Authority(_))
        ));
    }
    let mut counts = s.certificates_by_authority(NOW + 10).await.unwrap();
    counts.sort();
    assert_eq!(counts, vec![("aa".to_owned(), 1), ("bb".to_owned(), 1)]);
    assert!(
        s.certificates_by_authority(NOW + 901)
            .await
            .unwrap()
            .is_empty()
    );
}
