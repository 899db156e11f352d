//! [`PolicySet`]: policy files parsed and strictly validated against a
//! [`Schema`], with what the engine needs per policy (name, reason, which
//! context keys it reads).
//!
//! Loading is all-or-nothing and reports every problem of every file at once
//! (DESIGN.md §5: an invalid bundle is rejected at push with precise errors).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Policy, PolicyId, ValidationMode, Validator};

use crate::context_refs::ContextRefs;
use crate::decision::Lists;
use crate::problem::{LoadError, Problem};
use crate::schema::Schema;
use crate::version::PolicyVersion;

/// Annotation naming a policy in decisions and audit records.
pub const ID_ANNOTATION: &str = "id";
/// Annotation explaining a policy to the caller it decides about.
pub const REASON_ANNOTATION: &str = "reason";

/// One policy and what the engine derives from it once, at load.
#[derive(Debug, Clone)]
pub(crate) struct PolicyInfo {
    /// The policy, with its Cedar id set to [`Self::name`].
    pub(crate) policy: Policy,
    /// `@id` if present, else `<file>#<n>` (n-th policy in the file, from 0).
    pub(crate) name: Arc<str>,
    /// `@reason`, if present.
    pub(crate) reason: Option<Arc<str>>,
    /// The context keys the policy can read.
    pub(crate) context: ContextRefs,
    /// The lists of an error-free decision this policy alone determines
    /// (the usual case), built once and shared by every such decision.
    pub(crate) alone: Arc<Lists>,
}

/// A validated set of policies. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct PolicySet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cedar: cedar_policy::PolicySet,
    policies: Vec<PolicyInfo>,
    by_id: HashMap<PolicyId, u32>,
    version: PolicyVersion,
    schema_digest: [u8; 32],
}

impl PolicySet {
    /// Parses every `(file name, text)` pair and validates the whole set
    /// against `schema` in Cedar's strict mode. Templates are rejected (Ward
    /// does not link them yet). Policy names come from `@id("…")`, which must
    /// be unique across files; a policy without one is named `<file>#<n>`.
    pub fn load<'a>(
        schema: &Schema,
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LoadError> {
        let sources: Vec<(&str, &str)> = sources.into_iter().collect();
        let mut problems = Vec::new();
        // Where each named policy came from, to place validation errors.
        let mut origin: HashMap<PolicyId, (&str, &str)> = HashMap::new();
        let mut policies: Vec<Policy> = Vec::new();
        let mut files_seen: HashSet<&str> = HashSet::new();

        for &(file, text) in &sources {
            if !files_seen.insert(file) {
                problems.push(Problem::new(format!("{file}: file name given twice")));
                continue;
            }
            let parsed = match cedar_policy::PolicySet::from_str(text) {
                Ok(parsed) => parsed,
                Err(errs) => {
                    problems.extend(
                        errs.iter()
                            .map(|err| Problem::from_diagnostic(err, file, text)),
                    );
                    continue;
                }
            };
            if parsed.templates().next().is_some() {
                problems.push(
                    Problem::new(format!(
                        "{file}: contains a template (`?principal`/`?resource`)"
                    ))
                    .with_help("write static policies; Ward does not link templates yet"),
                );
            }
            // Cedar names parsed policies "policy0", "policy1"… in source
            // order; its set iterates in hash order, so restore file order.
            let mut in_file: Vec<(usize, &Policy)> = parsed
                .policies()
                .map(|p| (parse_ordinal(p.id()), p))
                .collect();
            in_file.sort_by_key(|(n, _)| *n);
            for (n, policy) in in_file {
                let name = match policy.annotation(ID_ANNOTATION) {
                    Some("") => {
                        problems.push(Problem::new(format!(
                            "{file}: policy #{n} has an empty @id"
                        )));
                        continue;
                    }
                    Some(id) => id.to_owned(),
                    None => format!("{file}#{n}"),
                };
                let id = PolicyId::new(&name);
                if let Some((other, _)) = origin.get(&id) {
                    problems.push(
                        Problem::new(format!(
                            "{file}: policy name {name:?} is also used in {other}"
                        ))
                        .with_help("give every policy a unique @id(\"…\")"),
                    );
                    continue;
                }
                origin.insert(id.clone(), (file, text));
                policies.push(policy.new_id(id));
            }
        }

        let cedar = match cedar_policy::PolicySet::from_policies(policies.iter().cloned()) {
            Ok(set) => set,
            Err(err) => {
                problems.push(Problem::new(format!("policies do not form a set: {err}")));
                return Err(LoadError::new(problems));
            }
        };
        let validation =
            Validator::new(schema.cedar().clone()).validate(&cedar, ValidationMode::Strict);
        for err in validation.validation_errors() {
            let problem = match origin.get(err.policy_id()) {
                Some((file, text)) => Problem::from_diagnostic(err, file, text),
                None => Problem::new(err.to_string()),
            };
            problems.push(problem);
        }
        if !problems.is_empty() {
            return Err(LoadError::new(problems));
        }

        let mut by_id = HashMap::with_capacity(policies.len());
        let mut infos = Vec::with_capacity(policies.len());
        for (i, policy) in policies.into_iter().enumerate() {
            let index = u32::try_from(i)
                .map_err(|_| LoadError::new(vec![Problem::new("more than 2^32 policies")]))?;
            by_id.insert(policy.id().clone(), index);
            let name: Arc<str> = Arc::from(policy.id().to_string());
            let reason: Option<Arc<str>> = policy.annotation(REASON_ANNOTATION).map(Arc::from);
            infos.push(PolicyInfo {
                alone: Arc::new(Lists {
                    policies: Box::new([Arc::clone(&name)]),
                    reasons: reason.iter().cloned().collect(),
                    errors: Box::default(),
                }),
                name,
                reason,
                context: ContextRefs::of(&policy),
                policy,
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                cedar,
                policies: infos,
                by_id,
                version: PolicyVersion::of_sources(
                    sources
                        .iter()
                        .copied()
                        .filter(|&source| !crate::schema::is_builtin_policy(source))
                        .chain(schema.user_fragments()),
                ),
                schema_digest: *schema.digest(),
            }),
        })
    }

    /// The content hash of the bundle: its policy files and its schema
    /// fragments (Ward's built-in schema and quarantine policy ship in the
    /// binary and are left out, so the version is the one pushed and signed).
    pub fn version(&self) -> PolicyVersion {
        self.inner.version
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.inner.policies.len()
    }

    /// True if there are no policies (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.inner.policies.is_empty()
    }

    /// The whole set as Cedar sees it (ids are Ward's policy names), e.g. to
    /// compare with Cedar's own `Authorizer`.
    pub fn cedar(&self) -> &cedar_policy::PolicySet {
        &self.inner.cedar
    }

    /// Policy names in load order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.policies.iter().map(|p| &*p.name)
    }

    pub(crate) fn infos(&self) -> &[PolicyInfo] {
        &self.inner.policies
    }

    pub(crate) fn index_of(&self, id: &PolicyId) -> Option<u32> {
        self.inner.by_id.get(id).copied()
    }

    pub(crate) fn schema_digest(&self) -> &[u8; 32] {
        &self.inner.schema_digest
    }
}

/// The `n` of Cedar's default `policy<n>` ids; anything else sorts last.
fn parse_ordinal(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
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

    use super::*;

    fn schema() -> Schema {
        Schema::ward().unwrap()
    }

    #[test]
    fn shipped_admin_policy_validates() {
        let set = PolicySet::load(
            &schema(),
            [("admin.cedar", include_str!("../policies/admin.cedar"))],
        )
        .unwrap();
        assert_eq!(set.names().collect::<Vec<_>>(), ["ward-admins-allow"]);
        let info = &set.infos()[0];
        assert_eq!(info.reason.as_deref(), Some("member of ward-admins"));
    }

    #[test]
    fn names_default_to_file_and_ordinal_in_source_order() {
        let text = (0..12)
            .map(|i| format!("permit(principal == Agent::\"a{i}\", action, resource);\n"))
            .collect::<String>();
        let set = PolicySet::load(&schema(), [("p.cedar", text.as_str())]).unwrap();
        let names: Vec<_> = set.names().collect();
        assert_eq!(names[0], "p.cedar#0");
        assert_eq!(names[11], "p.cedar#11");
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let bad_parse = "permit(principal, action, resource);\npermit(principal action, resource);";
        let bad_type =
            "@id(\"x\")\npermit(principal, action, resource)\nwhen { principal.nope == 1 };";
        let dup = "@id(\"x\")\nforbid(principal, action, resource);";
        let err = PolicySet::load(
            &schema(),
            [
                ("a.cedar", bad_parse),
                ("b.cedar", bad_type),
                ("c.cedar", dup),
            ],
        )
        .unwrap_err();
        let text = err.to_string();
        let problems = err.problems();
        let a = problems
            .iter()
            .find(|p| p.location.as_ref().is_some_and(|l| l.file == "a.cedar"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(a.location.as_ref().unwrap().line, 2, "{text}");
        assert!(
            text.contains("c.cedar: policy name \"x\" is also used in b.cedar"),
            "{text}"
        );
        // The type error is found even though other files failed to parse.
        let b = problems
            .iter()
            .find(|p| p.location.as_ref().is_some_and(|l| l.file == "b.cedar"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(b.location.as_ref().unwrap().line, 3, "{text}");
        assert!(b.what.contains("nope"), "{text}");
    }

    #[test]
    fn templates_are_rejected() {
        let err = PolicySet::load(
            &schema(),
            [(
                "t.cedar",
                "permit(principal == ?principal, action, resource);",
            )],
        )
        .unwrap_err();
        assert!(err.to_string().contains("template"), "{err}");
    }

    #[test]
    fn version_follows_the_text() {
        let s = schema();
        let a = PolicySet::load(&s, [("a.cedar", "permit(principal, action, resource);")]).unwrap();
        let b = PolicySet::load(&s, [("a.cedar", "forbid(principal, action, resource);")]).unwrap();
        assert_ne!(a.version(), b.version());
        assert_eq!(
            a.version(),
            PolicyVersion::of_sources([("a.cedar", "permit(principal, action, resource);")])
        );
    }
}
