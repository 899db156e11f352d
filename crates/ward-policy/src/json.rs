//! Requests from JSON, checked against the schema: what the AuthZEN API and
//! policy test files hand the engine.
//!
//! The engine trusts its PEP to build well-typed contexts (a mistyped field
//! compared with `==` is merely false, which could skip a `forbid`). Input
//! from outside — an AuthZEN caller, a test file — is therefore validated
//! with Cedar's own request validation first: the principal and resource
//! types must be ones the action applies to, and the context must have every
//! required field with the declared type. Only then is it converted.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::EntityUid;

use crate::request::{Context, ContextError, Request, Value};
use crate::schema::Schema;

/// Parses `Type::"id"` (Cedar's entity reference syntax).
pub fn parse_uid(text: &str) -> Result<EntityUid, ContextError> {
    EntityUid::from_str(text.trim()).map_err(|e| {
        ContextError::new(format!(
            "{text:?} is not an entity reference; write Type::\"id\", e.g. Agent::\"planner\" ({e})"
        ))
    })
}

/// An entity reference from a type name and an id (ids may hold any text).
pub fn uid(type_name: &str, id: &str) -> Result<EntityUid, ContextError> {
    let ty = match known_type(type_name) {
        Some(ty) => ty,
        None => cedar_policy::EntityTypeName::from_str(type_name).map_err(|e| {
            ContextError::new(format!("{type_name:?} is not an entity type name ({e})"))
        })?,
    };
    Ok(EntityUid::from_type_name_and_id(
        ty,
        cedar_policy::EntityId::new(id),
    ))
}

/// The entity types of Ward's default schema, parsed once: the proxy names
/// two or three of them per request, and Cedar's parser is the slow way to
/// turn `"Agent"` into a type name. Anything else is parsed as written.
fn known_type(type_name: &str) -> Option<cedar_policy::EntityTypeName> {
    static KNOWN: LazyLock<Vec<(&'static str, cedar_policy::EntityTypeName)>> =
        LazyLock::new(|| {
            [
                "Agent", "Action", "Team", "Segment", "Human", "Tool", "Skill", "Resource",
                "Dataset", "Server",
            ]
            .into_iter()
            .filter_map(|name| Some((name, cedar_policy::EntityTypeName::from_str(name).ok()?)))
            .collect()
        });
    KNOWN
        .iter()
        .find(|(name, _)| *name == type_name)
        .map(|(_, ty)| ty.clone())
}

/// A request whose context comes from JSON, validated against `schema`.
///
/// The JSON is read once, into the context that will be evaluated, and it
/// is that context Cedar validates — not a second reading of the JSON by
/// Cedar's own parser, which (schema-directed) would accept implicit
/// entity and extension forms that the evaluated context would hold as
/// plain strings. One reading, no differential; and no trip through
/// Cedar's untagged JSON decoding, which built and threw away an error per
/// value (it dominated AuthZEN profiles).
pub fn request(
    schema: &Schema,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: &serde_json::Value,
) -> Result<Request, ContextError> {
    let request = unvalidated_request(principal, action, resource, context)?;
    cedar_policy::Request::new(
        request.principal.clone(),
        request.action.clone(),
        request.resource.clone(),
        request.context.to_cedar_context()?,
        Some(schema.cedar()),
    )
    .map_err(|e| ContextError::new(format!("context: {e}")))?;
    Ok(request)
}

/// [`request`] without Cedar's validation: only for a request whose
/// validity is already known (see [`Schema::default_context_validated`]).
pub(crate) fn unvalidated_request(
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: &serde_json::Value,
) -> Result<Request, ContextError> {
    let serde_json::Value::Object(fields) = context else {
        return Err(ContextError::new(
            "context must be a JSON object".to_owned(),
        ));
    };
    let context = fields
        .iter()
        .map(|(k, v)| Ok((k.clone(), value(v)?)))
        .collect::<Result<BTreeMap<_, _>, ContextError>>()?
        .into_iter()
        .collect::<Context>();
    Ok(Request::new(principal, action, resource, context))
}

/// A Ward value from Cedar's JSON value syntax: `{"__entity": {"type",
/// "id"}}` for entities, `{"__extn": {"fn": "ip"|"decimal", "arg"}}` for
/// extension values, other objects as records.
pub fn value(json: &serde_json::Value) -> Result<Value, ContextError> {
    use serde_json::Value as J;
    Ok(match json {
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Long(n.as_i64().ok_or_else(|| {
            ContextError::new(format!("{n} is not a 64-bit integer (Cedar has no floats)"))
        })?),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Set(items.iter().map(value).collect::<Result<_, _>>()?),
        J::Null => return Err(ContextError::new("null is not a Cedar value".to_owned())),
        J::Object(map) => {
            if let Some(entity) = map.get("__entity") {
                let field = |k: &str| entity.get(k).and_then(J::as_str);
                match (field("type"), field("id")) {
                    (Some(t), Some(id)) => Value::Entity(uid(t, id)?),
                    _ => {
                        return Err(ContextError::new(
                            "__entity needs string \"type\" and \"id\"".to_owned(),
                        ));
                    }
                }
            } else if let Some(extn) = map.get("__extn") {
                let field = |k: &str| extn.get(k).and_then(J::as_str);
                match (field("fn"), field("arg")) {
                    (Some("ip"), Some(arg)) => Value::Ip(arg.to_owned()),
                    (Some("decimal"), Some(arg)) => Value::Decimal(arg.to_owned()),
                    _ => {
                        return Err(ContextError::new(
                            "__extn needs \"fn\" (ip or decimal) and a string \"arg\"".to_owned(),
                        ));
                    }
                }
            } else {
                Value::Record(
                    map.iter()
                        .map(|(k, v)| Ok((k.clone(), value(v)?)))
                        .collect::<Result<_, ContextError>>()?,
                )
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use serde_json::json;

    use super::*;

    fn ctx() -> serde_json::Value {
        json!({"time": 0, "hour": 12, "method": "GET", "path": "/", "data_labels": [], "risk_score": 5})
    }

    #[test]
    fn uids_from_parts_equal_parsed_ones_for_known_and_other_types() {
        for (ty, id) in [
            ("Agent", "planner"),
            ("Action", "tools/call"),
            ("Tool", "a\"b"),
            ("Ns::Thing", "x"),
        ] {
            let text = format!("{ty}::{}", serde_json::to_string(id).unwrap());
            assert_eq!(uid(ty, id).unwrap(), parse_uid(&text).unwrap(), "{text}");
        }
        let err = uid("not a type", "x").unwrap_err().to_string();
        assert!(err.contains("is not an entity type name"), "{err}");
    }

    #[test]
    fn valid_requests_convert() {
        let schema = Schema::ward().unwrap();
        let r = request(
            &schema,
            parse_uid(r#"Agent::"a""#).unwrap(),
            parse_uid(r#"Action::"GET""#).unwrap(),
            parse_uid(r#"Agent::"b""#).unwrap(),
            &ctx(),
        )
        .unwrap();
        assert_eq!(r.context.get("risk_score"), Some(&Value::Long(5)));
        assert_eq!(r.context.get("data_labels"), Some(&Value::Set(vec![])));
    }

    #[test]
    fn schema_violations_are_refused() {
        let schema = Schema::ward().unwrap();
        let a = parse_uid(r#"Agent::"a""#).unwrap();
        let get = parse_uid(r#"Action::"GET""#).unwrap();
        let b = parse_uid(r#"Agent::"b""#).unwrap();
        // Missing a required field.
        let mut missing = ctx();
        missing.as_object_mut().unwrap().remove("risk_score");
        assert!(request(&schema, a.clone(), get.clone(), b.clone(), &missing).is_err());
        // Wrong type.
        let mut wrong = ctx();
        wrong["risk_score"] = json!("high");
        assert!(request(&schema, a.clone(), get.clone(), b.clone(), &wrong).is_err());
        // A principal type the action does not apply to.
        let team = parse_uid(r#"Team::"t""#).unwrap();
        assert!(request(&schema, team, get.clone(), b.clone(), &ctx()).is_err());
        // An action the schema does not declare.
        let fly = parse_uid(r#"Action::"FLY""#).unwrap();
        assert!(request(&schema, a, fly, b, &ctx()).is_err());
        assert!(parse_uid("planner").is_err());
        assert!(value(&json!(1.5)).is_err());
        assert!(value(&json!(null)).is_err());
    }

    #[test]
    fn extension_and_entity_values() {
        assert_eq!(
            value(&json!({"__extn": {"fn": "ip", "arg": "10.0.0.1"}})).unwrap(),
            Value::Ip("10.0.0.1".into())
        );
        assert_eq!(
            value(&json!({"__entity": {"type": "Agent", "id": "x"}})).unwrap(),
            Value::Entity(uid("Agent", "x").unwrap())
        );
        assert!(matches!(value(&json!({"a": 1})).unwrap(), Value::Record(_)));
    }

    /// What is validated is what is evaluated: an extension or entity value
    /// must be written explicitly (`__extn`, `__entity`); the implicit form
    /// Cedar's schema-directed parser would accept is refused, because the
    /// evaluated context would hold it as a plain string.
    #[test]
    fn the_validated_context_is_the_evaluated_one() {
        let schema = Schema::with_fragments([(
            "probe.cedarschema",
            r#"action "probe" appliesTo { principal: [Agent], resource: [Agent], context: { addr: ipaddr } };"#,
        )])
        .unwrap();
        let a = parse_uid(r#"Agent::"a""#).unwrap();
        let probe = parse_uid(r#"Action::"probe""#).unwrap();
        let implicit = json!({"addr": "10.0.0.1"});
        assert!(request(&schema, a.clone(), probe.clone(), a.clone(), &implicit).is_err());
        let explicit = json!({"addr": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}});
        let r = request(&schema, a.clone(), probe, a, &explicit).unwrap();
        assert_eq!(r.context.get("addr"), Some(&Value::Ip("10.0.0.1".into())));
    }
}
