//! Policy bundles as code, server side: `ward policy push|list|show|rollback`.
//!
//! A push is validated strictly against the schema and its own
//! `tests/*.yaml` cases are run again here; a bundle that fails either is
//! refused (422) with every problem listed. An accepted bundle is stored
//! immutably under its content hash, signed with the server's policy key
//! (Ed25519 over `ward-policy-v1\n<version>\n`), activated, and carried to
//! watchers as a `policy` change. Rollback re-activates a stored version.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ward_identity::Signer;

use super::{ApiError, AppState, Caller, require_admin};
use crate::policy::BundleFiles;
use crate::store::{PolicyFile, PolicySummary, StoredPolicy};

/// Largest bundle accepted (all files together).
pub const MAX_BUNDLE_BYTES: usize = 4 << 20;

/// `POST /v1/policies` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The bundle's files: `*.cedar`, optional `schema.cedarschema`,
    /// `tests/*.yaml`.
    pub files: Vec<PolicyFile>,
}

/// `POST /v1/policies` and `…/activate` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushResponse {
    /// The active version.
    pub version: String,
    /// The revision that activated it.
    pub revision: u64,
    /// Test cases run and passed at push (0 for a rollback).
    pub tests_passed: usize,
    /// The server's signature over the version, base64.
    pub signature: String,
}

/// The message the server signs for a policy version.
pub fn signed_message(version: &str) -> Vec<u8> {
    format!("ward-policy-v1\n{version}\n").into_bytes()
}

fn check_names(files: &[PolicyFile]) -> Result<(), ApiError> {
    let mut total = 0usize;
    for f in files {
        total = total.saturating_add(f.text.len());
        let (dir, base) = match f.name.split_once('/') {
            Some((dir, base)) => (Some(dir), base),
            None => (None, f.name.as_str()),
        };
        let simple = !base.is_empty()
            && !base.starts_with('.')
            && base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !simple || !matches!(dir, None | Some("tests")) {
            return Err(ApiError::BadRequest(format!(
                "file name {:?}: use `name.cedar`, `schema.cedarschema` or `tests/name.yaml`",
                f.name
            )));
        }
    }
    if total > MAX_BUNDLE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "bundle is {total} bytes; the limit is {MAX_BUNDLE_BYTES}"
        )));
    }
    Ok(())
}

pub(crate) async fn push(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    require_admin(&state, &caller, "policy/push", None).await?;
    check_names(&req.files)?;
    let files = BundleFiles::from_files(req.files.iter().map(|f| (f.name.clone(), f.text.clone())));
    if files.policies.is_empty() {
        return Err(ApiError::Invalid(
            "the bundle has no *.cedar files".to_owned(),
        ));
    }
    let bundle = files.load().map_err(|e| {
        ApiError::Invalid(format!(
            "the bundle does not validate:\n{}",
            e.problems()
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    })?;
    let mut passed = 0;
    let mut failures = Vec::new();
    for (name, text) in &files.tests {
        match ward_policy::testing::run_file(&bundle, name, text) {
            Ok(outcomes) => {
                for o in outcomes {
                    match o.failure {
                        None => passed += 1,
                        Some(why) => failures.push(format!("  {}  {}: {why}", o.file, o.name)),
                    }
                }
            }
            Err(e) => failures.push(format!("  {e}")),
        }
    }
    if !failures.is_empty() {
        return Err(ApiError::Invalid(format!(
            "{} test case{} failed; nothing was stored:\n{}",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" },
            failures.join("\n")
        )));
    }
    let version = bundle.policies.version().to_string();
    let signature = state
        .policy_signer
        .sign(&signed_message(&version))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let signature = base64::engine::general_purpose::STANDARD.encode(signature);
    let peer = caller
        .0
        .as_ref()
        .map(|p| p.spiffe_id.to_string())
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut stored_files = req.files;
    stored_files.sort_by(|a, b| a.name.cmp(&b.name));
    let revision = state
        .store
        .push_policy(
            &StoredPolicy {
                version: version.clone(),
                files: stored_files,
                signature: signature.clone(),
                pushed_by: peer.clone(),
                pushed_at: now,
            },
            now,
        )
        .await?;
    // Apply here too, so the pusher's next call already sees it.
    if let Err(e) = state.pdp.refresh(&state.store).await {
        tracing::error!(error = %e, "pushed policy stored but not applied on this replica");
    }
    tracing::warn!(%version, %peer, revision, tests = passed, "policy version pushed and activated");
    Ok(Json(PushResponse {
        version,
        revision,
        tests_passed: passed,
        signature,
    }))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PolicySummary>>, ApiError> {
    require_admin(&state, &caller, "policy/show", None).await?;
    Ok(Json(state.store.policies().await?))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Result<Json<StoredPolicy>, ApiError> {
    require_admin(&state, &caller, "policy/show", None).await?;
    state
        .store
        .policy(&version)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no policy version {version}; `ward policy list` shows them"
            ))
        })
}

pub(crate) async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Result<Json<PushResponse>, ApiError> {
    require_admin(&state, &caller, "policy/push", None).await?;
    let stored = state.store.policy(&version).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no policy version {version}; `ward policy list` shows them"
        ))
    })?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let revision = state.store.activate_policy(&version, now).await?;
    if let Err(e) = state.pdp.refresh(&state.store).await {
        tracing::error!(error = %e, "activated policy not applied on this replica");
    }
    tracing::warn!(%version, revision, "policy version re-activated (rollback)");
    Ok(Json(PushResponse {
        version,
        revision,
        tests_passed: 0,
        signature: stored.signature,
    }))
}
