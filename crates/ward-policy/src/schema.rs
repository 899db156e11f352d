//! The Cedar schema policies and entities are checked against: Ward's
//! default ([`WARD_SCHEMA`]) plus any user fragments.
//!
//! A [`Schema`] remembers a digest of its text so that a [`crate::PolicySet`]
//! or [`crate::EntityStore`] validated against one schema is never paired
//! with another in an [`crate::Engine`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use cedar_policy::{EntityUid, SchemaFragment};
use miette::Diagnostic as _;

use crate::problem::{LoadError, Problem};

/// Ward's default schema, in Cedar schema syntax (namespace-free).
pub const WARD_SCHEMA: &str = include_str!("../schema/ward.cedarschema");

/// The file name the default schema's problems are reported under.
pub const WARD_SCHEMA_NAME: &str = "ward.cedarschema";

/// The default admin policy the control plane always loads: members of
/// `Team::"ward-admins"` may use the whole admin API.
pub const ADMIN_POLICY: &str = include_str!("../policies/admin.cedar");
/// File name the admin policy is reported under.
pub const ADMIN_POLICY_NAME: &str = "ward-admin.cedar";
/// Ward's built-in quarantine policy: proxies load it beside every bundle.
pub const QUARANTINE_POLICY: &str = include_str!("../policies/quarantine.cedar");
/// The file name it is loaded under (policy errors name it).
pub const QUARANTINE_POLICY_NAME: &str = "ward-quarantine.cedar";

/// Whether `(name, text)` is Ward's built-in quarantine policy, which rides
/// with every bundle but is not part of its version.
pub(crate) fn is_builtin_policy(source: (&str, &str)) -> bool {
    source == (QUARANTINE_POLICY_NAME, QUARANTINE_POLICY)
}
/// The segment quarantined agents are put in.
pub const QUARANTINE_SEGMENT: &str = "quarantine";

/// A parsed, merged Cedar schema. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Schema {
    cedar: Arc<cedar_policy::Schema>,
    digest: [u8; 32],
    /// The fragments other than Ward's built-in default: bundle content,
    /// which a policy version must cover (the default ships in the binary).
    user: Arc<[(String, String)]>,
    /// Requests Cedar already validated under this schema with the default
    /// context (see [`Schema::default_context_validated`]).
    defaults_ok: Arc<Mutex<HashSet<Triple>>>,
}

/// Principal, action and resource of a request.
pub(crate) type Triple = (EntityUid, EntityUid, EntityUid);

/// Most triples remembered as valid with the default context; past it the
/// memo starts over, so a caller naming endless ids costs validations, not
/// memory.
const MAX_DEFAULTS_OK: usize = 4096;

impl Schema {
    /// Ward's default schema alone.
    pub fn ward() -> Result<Self, LoadError> {
        Self::with_fragments(std::iter::empty::<(&str, &str)>())
    }

    /// Ward's default schema extended with user fragments, given as
    /// `(file name, Cedar schema text)`. Every problem in every fragment is
    /// reported.
    pub fn with_fragments<'a>(
        extra: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LoadError> {
        Self::from_fragments(std::iter::once((WARD_SCHEMA_NAME, WARD_SCHEMA)).chain(extra))
    }

    /// A schema made only of the given fragments, without Ward's default.
    pub fn from_fragments<'a>(
        fragments: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LoadError> {
        let mut problems = Vec::new();
        let mut parsed = Vec::new();
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut user = Vec::new();
        for (name, text) in fragments {
            if (name, text) != (WARD_SCHEMA_NAME, WARD_SCHEMA) {
                user.push((name.to_owned(), text.to_owned()));
            }
            for part in [name, text] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part.as_bytes());
            }
            match SchemaFragment::from_cedarschema_str(text) {
                Ok((fragment, _warnings)) => parsed.push(fragment),
                Err(err) => problems.push(Problem::from_diagnostic(&err, name, text)),
            }
        }
        if !problems.is_empty() {
            return Err(LoadError::new(problems));
        }
        let cedar = cedar_policy::Schema::from_schema_fragments(parsed).map_err(|err| {
            LoadError::new(vec![
                Problem::new(format!("schema fragments do not combine: {err}")).with_help(
                    err.help().map_or_else(
                        || "declare each entity type and action once, and define every type you reference".to_owned(),
                        |h| h.to_string(),
                    ),
                ),
            ])
        })?;
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(Self {
            cedar: Arc::new(cedar),
            digest: out,
            user: user.into(),
            defaults_ok: Arc::default(),
        })
    }

    /// The `(file name, text)` fragments besides Ward's default schema.
    pub fn user_fragments(&self) -> impl Iterator<Item = (&str, &str)> {
        self.user.iter().map(|(n, t)| (n.as_str(), t.as_str()))
    }

    /// The Cedar schema, for callers that use Cedar's own tools.
    pub fn cedar(&self) -> &cedar_policy::Schema {
        &self.cedar
    }

    /// SHA-256 of the fragments' names and text.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Whether Cedar validated `triple` under this schema with the request
    /// context the AuthZEN API fills in when the caller gives none. Its
    /// fields and their types are fixed (only the time moves), and request
    /// validation reads nothing else — the three entity references (enum
    /// entity types restrict ids, so the ids are part of the key), the
    /// action's declaration and the context's types — so the answer cannot
    /// change while the schema does not; a new schema is a new `Schema`.
    /// Only successes are remembered: an invalid request is validated, and
    /// refused, every time. A poisoned memo reads as "not validated".
    pub(crate) fn default_context_validated(&self, triple: &Triple) -> bool {
        self.defaults_ok
            .lock()
            .is_ok_and(|memo| memo.contains(triple))
    }

    /// Remembers that `triple` validated with the default context.
    pub(crate) fn remember_default_context_validated(&self, triple: Triple) {
        if let Ok(mut memo) = self.defaults_ok.lock() {
            if memo.len() >= MAX_DEFAULTS_OK {
                memo.clear();
            }
            memo.insert(triple);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use std::str::FromStr;

    use cedar_policy::EntityUid;

    use super::*;

    #[test]
    fn default_schema_has_the_action_groups() {
        let schema = Schema::ward().unwrap();
        let actions: Vec<String> = schema.cedar().actions().map(ToString::to_string).collect();
        for name in [
            "GET",
            "OPTIONS",
            "tools/call",
            "prompts/get",
            "message/stream",
            "tasks/cancel",
            "agent/register",
            "policy/push",
        ] {
            assert!(
                actions.contains(&format!("Action::\"{name}\"")),
                "{name} missing from {actions:?}"
            );
        }
        let entities = schema.cedar().action_entities().unwrap();
        let get = EntityUid::from_str(r#"Action::"GET""#).unwrap();
        let http = EntityUid::from_str(r#"Action::"http""#).unwrap();
        let mcp = EntityUid::from_str(r#"Action::"mcp""#).unwrap();
        assert!(entities.is_ancestor_of(&http, &get));
        assert!(!entities.is_ancestor_of(&mcp, &get));
    }

    #[test]
    fn fragments_extend_the_default_and_change_the_digest() {
        let base = Schema::ward().unwrap();
        let extended =
            Schema::with_fragments([("extra.cedarschema", "entity Vault { tier: Long };")])
                .unwrap();
        assert!(
            extended
                .cedar()
                .entity_types()
                .any(|t| t.to_string() == "Vault")
        );
        assert_ne!(base.digest(), extended.digest());
    }

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let err = Schema::with_fragments([(
            "bad.cedarschema",
            "entity Ok;\nentity Broken {\n  x: ,\n};",
        )])
        .unwrap_err();
        let problem = &err.problems()[0];
        let location = problem.location.as_ref().unwrap();
        assert_eq!(location.file, "bad.cedarschema");
        assert_eq!(location.line, 3, "{err}");
    }
}
