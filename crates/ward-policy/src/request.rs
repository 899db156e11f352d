//! [`Request`]: who (principal) does what (action) to what (resource), in
//! which [`Context`].
//!
//! The context is Ward's own value tree rather than Cedar's `Context` because
//! the decision cache must hash and compare it on every call without
//! allocating; it becomes a Cedar `Context` only when a policy is evaluated,
//! and then only with the keys the applicable policies read.

use std::collections::BTreeMap;

use cedar_policy::{EntityUid, RestrictedExpression};

use crate::context_refs::ContextRefs;

/// A context value; mirrors Cedar's value types.
///
/// Sets compare in order: two sets with the same members in another order
/// are different cache keys but the same Cedar value, which costs a cache
/// miss, never a wrong answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// A 64-bit integer (Cedar `Long`).
    Long(i64),
    /// A string.
    String(String),
    /// A set (Cedar removes duplicates).
    Set(Vec<Value>),
    /// A record.
    Record(BTreeMap<String, Value>),
    /// An entity reference.
    Entity(EntityUid),
    /// An `ipaddr` extension value, from its text (`"10.0.0.1/8"`).
    Ip(String),
    /// A `decimal` extension value, from its text (`"1.25"`).
    Decimal(String),
}

impl Value {
    fn to_cedar(&self) -> Result<RestrictedExpression, ContextError> {
        Ok(match self {
            Self::Bool(b) => RestrictedExpression::new_bool(*b),
            Self::Long(n) => RestrictedExpression::new_long(*n),
            Self::String(s) => RestrictedExpression::new_string(s.clone()),
            Self::Set(items) => RestrictedExpression::new_set(
                items
                    .iter()
                    .map(Self::to_cedar)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Self::Record(fields) => RestrictedExpression::new_record(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.to_cedar()?)))
                    .collect::<Result<Vec<_>, ContextError>>()?,
            )
            .map_err(|e| ContextError(e.to_string()))?,
            Self::Entity(uid) => RestrictedExpression::new_entity_uid(uid.clone()),
            Self::Ip(text) => RestrictedExpression::new_ip(text),
            Self::Decimal(text) => RestrictedExpression::new_decimal(text),
        })
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Long(n)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<EntityUid> for Value {
    fn from(uid: EntityUid) -> Self {
        Self::Entity(uid)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Self::Set(items.into_iter().map(Into::into).collect())
    }
}

/// A context value Cedar could not build (e.g. `Value::Ip("not an ip")`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid context: {0}")]
pub struct ContextError(String);

impl ContextError {
    pub(crate) fn new(message: String) -> Self {
        Self(message)
    }
}

/// The context record of a request: top-level keys to values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Context(BTreeMap<String, Value>);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`, builder style.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key`, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Keys and values in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The Cedar context holding only the keys in `refs` (all for
    /// [`ContextRefs::Whole`]).
    pub(crate) fn to_cedar(
        &self,
        refs: &ContextRefs,
    ) -> Result<cedar_policy::Context, ContextError> {
        match refs {
            ContextRefs::Whole => cedar_context(self.0.iter()),
            ContextRefs::Keys(keys) => {
                cedar_context(keys.iter().filter_map(|k| self.0.get_key_value(k.as_str())))
            }
        }
    }

    /// The whole context as a Cedar context.
    pub fn to_cedar_context(&self) -> Result<cedar_policy::Context, ContextError> {
        self.to_cedar(&ContextRefs::Whole)
    }
}

/// A Cedar context of `pairs`. They are streamed into Cedar rather than
/// collected first, as this runs on every evaluation; the first value that
/// cannot be converted stops the stream and fails the whole context.
fn cedar_context<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Result<cedar_policy::Context, ContextError> {
    let mut failed = None;
    let context = cedar_policy::Context::from_pairs(pairs.map_while(|(k, v)| match v.to_cedar() {
        Ok(expr) => Some((k.clone(), expr)),
        Err(err) => {
            failed = Some(err);
            None
        }
    }));
    if let Some(err) = failed {
        return Err(err);
    }
    context.map_err(|e| ContextError(e.to_string()))
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// One authorization question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// Who asks, e.g. `Agent::"a"`.
    pub principal: EntityUid,
    /// What they do, e.g. `Action::"GET"` or `Action::"tools/call"`.
    pub action: EntityUid,
    /// To what, e.g. `Agent::"b"` or `Tool::"b/search"`.
    pub resource: EntityUid,
    /// What else the PEP knows (see `RequestContext` in the schema).
    pub context: Context,
}

impl Request {
    /// A request from its four parts.
    pub fn new(
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
        context: Context,
    ) -> Self {
        Self {
            principal,
            action,
            resource,
            context,
        }
    }

    /// The same question as a Cedar request (whole context), e.g. for Cedar's
    /// own tools or to compare with its `Authorizer`.
    pub fn to_cedar(&self) -> Result<cedar_policy::Request, ContextError> {
        cedar_policy::Request::new(
            self.principal.clone(),
            self.action.clone(),
            self.resource.clone(),
            self.context.to_cedar_context()?,
            None,
        )
        .map_err(|e| ContextError(e.to_string()))
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

    use super::*;

    #[test]
    fn projection_keeps_only_referenced_keys() {
        let ctx = Context::new()
            .with("risk_score", 10)
            .with("path", "/x")
            .with("labels", vec!["pii"]);
        let keys = ContextRefs::Keys(vec!["path".to_owned(), "absent".to_owned()].into());
        let projected = ctx.to_cedar(&keys).unwrap();
        assert!(projected.get("path").is_some());
        assert!(projected.get("risk_score").is_none());
        assert!(projected.get("absent").is_none());
        let whole = ctx.to_cedar(&ContextRefs::Whole).unwrap();
        assert!(whole.get("labels").is_some() && whole.get("risk_score").is_some());
    }

    #[test]
    fn bad_extension_values_are_errors_not_panics() {
        let ctx = Context::new().with("ip", Value::Ip("not an ip".to_owned()));
        assert!(ctx.to_cedar_context().is_err());
        let ok = Context::new().with("ip", Value::Ip("10.0.0.1".to_owned()));
        assert!(ok.to_cedar_context().is_ok());
    }
}
