//! Which `context` keys a policy can read, so the decision cache can key on
//! exactly those (DESIGN.md §4.5) and ignore the rest (e.g. `time` when no
//! applicable policy looks at it).
//!
//! The analysis walks the policy's JSON (EST) form. It only ever errs towards
//! "reads the whole context": an access `context.k`, `context["k"]` or
//! `context has k` with a literal key records `k`; any other use of the
//! `context` variable (passed whole, compared, put in a record…) or any form
//! the walk does not recognise makes the result [`ContextRefs::Whole`].

use std::collections::BTreeSet;
use std::sync::Arc;

use cedar_policy::Policy;
use serde_json::Value as Json;

/// The context keys a policy (or a set of policies) can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextRefs {
    /// Exactly these top-level keys, sorted and without duplicates.
    Keys(Arc<[String]>),
    /// Possibly any key.
    Whole,
}

impl ContextRefs {
    /// Reads no key.
    pub fn none() -> Self {
        Self::Keys(Arc::from(Vec::new()))
    }

    /// The keys `policy` can read.
    pub fn of(policy: &Policy) -> Self {
        let Ok(json) = policy.to_json() else {
            return Self::Whole;
        };
        let mut keys = BTreeSet::new();
        if walk(&json, &mut keys) {
            Self::Keys(keys.into_iter().collect::<Vec<_>>().into())
        } else {
            Self::Whole
        }
    }

    /// The keys any of `refs` can read.
    pub fn union<'a>(refs: impl IntoIterator<Item = &'a Self>) -> Self {
        let mut keys = BTreeSet::new();
        for r in refs {
            match r {
                Self::Whole => return Self::Whole,
                Self::Keys(ks) => keys.extend(ks.iter().cloned()),
            }
        }
        Self::Keys(keys.into_iter().collect::<Vec<_>>().into())
    }
}

/// Collects literal context keys under `node`; false if `context` is used in
/// any other way.
fn walk(node: &Json, keys: &mut BTreeSet<String>) -> bool {
    match node {
        Json::Object(map) => {
            if let Some(key) = context_access(node) {
                keys.insert(key.to_owned());
                return true;
            }
            if map.get("Var").and_then(Json::as_str) == Some("context") {
                return false;
            }
            map.values().all(|child| walk(child, keys))
        }
        Json::Array(items) => items.iter().all(|child| walk(child, keys)),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => true,
    }
}

/// `k` if `node` is exactly `{".": {"left": {"Var": "context"}, "attr": k}}`
/// or the same with `"has"`. In the EST an attribute name is a bare JSON
/// string, which no expression is, so a record literal cannot take this shape.
fn context_access(node: &Json) -> Option<&str> {
    let map = node.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (op, body) = map.iter().next()?;
    if op != "." && op != "has" {
        return None;
    }
    let body = body.as_object()?;
    if body.len() != 2 {
        return None;
    }
    let left = body.get("left")?.as_object()?;
    if left.len() != 1 || left.get("Var")?.as_str()? != "context" {
        return None;
    }
    body.get("attr")?.as_str()
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

    use super::*;

    fn refs(src: &str) -> ContextRefs {
        ContextRefs::of(&Policy::from_str(src).unwrap())
    }

    fn keys(list: &[&str]) -> ContextRefs {
        ContextRefs::Keys(
            list.iter()
                .map(|k| (*k).to_owned())
                .collect::<Vec<_>>()
                .into(),
        )
    }

    #[test]
    fn literal_accesses_are_keys() {
        assert_eq!(refs("permit(principal, action, resource);"), keys(&[]));
        assert_eq!(
            refs(
                r#"permit(principal, action, resource) when { context.risk_score < 5 && context has delegation }
                   unless { context["path"] like "/admin*" || context.risk_score > 9 };"#
            ),
            keys(&["delegation", "path", "risk_score"])
        );
        // Nested access reads the top-level key.
        assert_eq!(
            refs("permit(principal, action, resource) when { context.a.b == 1 };"),
            keys(&["a"])
        );
    }

    #[test]
    fn any_other_use_reads_the_whole_context() {
        for src in [
            "permit(principal, action, resource) when { context == {} };",
            "permit(principal, action, resource) when { {c: context}.c.x == 1 };",
            r#"permit(principal, action, resource) when { {".": context} has "." };"#,
            "permit(principal, action, resource) when { [context].contains({}) };",
            "permit(principal, action, resource) when { (if true then context else {}).x == 1 };",
        ] {
            assert_eq!(refs(src), ContextRefs::Whole, "{src}");
        }
    }

    #[test]
    fn union_merges_or_widens() {
        let a = keys(&["a", "b"]);
        let b = keys(&["b", "c"]);
        assert_eq!(ContextRefs::union([&a, &b]), keys(&["a", "b", "c"]));
        assert_eq!(
            ContextRefs::union([&a, &ContextRefs::Whole]),
            ContextRefs::Whole
        );
        assert_eq!(ContextRefs::union([]), ContextRefs::none());
    }
}
