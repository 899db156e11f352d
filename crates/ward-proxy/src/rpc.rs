//! Agent protocols on the inbound path: what an MCP or A2A JSON-RPC call
//! means to Cedar, and what a caller may see of an upstream's discovery
//! answers.
//!
//! [`calls`] turns a strictly parsed body ([`crate::jsonrpc`]) into one
//! [`Call`] per JSON-RPC message: the Cedar action (the method, A2A v1.0
//! names mapped onto the v0.3 ones the schema declares), the resource
//! (`Tool::"<agent>/<tool>"` for `tools/call`, `Skill::"<agent>/<skill>"`
//! for an A2A message naming a skill, else the agent), and the context
//! fields policies can read (tool, target, bounded arguments). Every call in
//! a body must be allowed or none is forwarded.
//!
//! [`Visibility`] filters discovery: a `tools/list` result keeps only the
//! tools this caller may `tools/call`; an A2A agent card only the skills it
//! may `message/send` to.

use std::sync::Arc;

use serde_json::Value as Json;
use ward_policy::{Context, Engine};

use crate::jsonrpc::{Envelope, Message};

/// Most argument entries a policy sees (the rest are left out of the
/// context; the audit record's digest covers them all).
pub const MAX_ARGUMENTS: usize = 32;
/// Longest `name=value` argument entry a policy sees, in bytes.
pub const MAX_ARGUMENT_BYTES: usize = 256;

/// How the proxy reads an upstream's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Plain HTTP: the method is the action.
    #[default]
    Http,
    /// MCP over streamable HTTP (JSON-RPC).
    Mcp,
    /// A2A (JSON-RPC, agent card).
    A2a,
}

impl Protocol {
    /// `http`, `mcp` or `a2a`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Mcp => "mcp",
            Self::A2a => "a2a",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http" => Ok(Self::Http),
            "mcp" => Ok(Self::Mcp),
            "a2a" => Ok(Self::A2a),
            other => Err(format!(
                "unknown protocol {other:?}: expected \"http\", \"mcp\" or \"a2a\""
            )),
        }
    }
}

/// One JSON-RPC message as Cedar sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The request id (`None`: a notification or a client's response).
    pub id: Option<Json>,
    /// The method as sent (`tools/call`, `SendMessage`, ...).
    pub method: String,
    /// The Cedar action id (`tools/call`, `message/send`, ...).
    pub action: String,
    /// Resource entity type and id.
    pub resource: (&'static str, String),
    /// The tool or skill named, if any.
    pub tool: Option<String>,
    /// Resource URI (`resources/read`) or prompt name (`prompts/get`).
    pub target: Option<String>,
    /// Top-level arguments as `name=value`, bounded.
    pub arguments: Vec<String>,
    /// Top-level argument names, bounded.
    pub argument_names: Vec<String>,
    /// Some arguments were left out or cut to fit the bounds.
    pub arguments_truncated: bool,
    /// SHA-256 of the params (canonical JSON).
    pub args_sha256: [u8; 32],
}

impl Call {
    /// What the audit record names: the tool, skill, URI or prompt.
    pub fn named(&self) -> Option<&str> {
        self.tool.as_deref().or(self.target.as_deref())
    }

    /// `Type::"id"`, as audit records spell entities.
    pub fn resource_text(&self) -> String {
        format!("{}::{:?}", self.resource.0, self.resource.1)
    }

    /// The context fields this call adds.
    pub fn context(&self, protocol: Protocol, mut context: Context) -> Context {
        context = context
            .with("protocol", protocol.as_str())
            .with("rpc_method", self.method.as_str());
        if let Some(tool) = &self.tool {
            context = context.with("tool", tool.as_str());
        }
        if let Some(target) = &self.target {
            context = context.with("target", target.as_str());
        }
        if !self.arguments.is_empty() || !self.argument_names.is_empty() {
            context = context
                .with("arguments", self.arguments.clone())
                .with("argument_names", self.argument_names.clone())
                .with("arguments_truncated", self.arguments_truncated);
        }
        context
    }
}

/// A body whose calls cannot be mapped (e.g. `tools/call` without a tool
/// name): refused as a whole, like a parse error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {index}: {detail}")]
pub struct MappingError {
    /// Position in the batch (0 for a single message).
    pub index: usize,
    /// What is wrong.
    pub detail: String,
}

/// The calls in `envelope`, addressed to `agent`'s app.
pub fn calls(
    protocol: Protocol,
    agent: &str,
    envelope: &Envelope,
) -> Result<Vec<Call>, MappingError> {
    envelope
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            call(protocol, agent, message).map_err(|detail| MappingError { index, detail })
        })
        .collect()
}

fn call(protocol: Protocol, agent: &str, message: &Message) -> Result<Call, String> {
    let (id, method, params) = match message {
        Message::Request { id, method, params } => {
            (Some(id.clone()), method.as_str(), params.as_ref())
        }
        Message::Notification { method, params } => (None, method.as_str(), params.as_ref()),
        Message::Response { .. } => {
            let action = match protocol {
                Protocol::A2a => {
                    return Err("A2A clients do not send JSON-RPC responses".to_owned());
                }
                _ => "mcp/response",
            };
            return Ok(Call {
                id: None,
                method: String::new(),
                action: action.to_owned(),
                resource: ("Agent", agent.to_owned()),
                tool: None,
                target: None,
                arguments: Vec::new(),
                argument_names: Vec::new(),
                arguments_truncated: false,
                args_sha256: crate::jsonrpc::digest_params(None),
            });
        }
    };
    let mut out = Call {
        id,
        method: method.to_owned(),
        action: method.to_owned(),
        resource: ("Agent", agent.to_owned()),
        tool: None,
        target: None,
        arguments: Vec::new(),
        argument_names: Vec::new(),
        arguments_truncated: false,
        args_sha256: crate::jsonrpc::digest_params(params),
    };
    let field = |name: &str| params.and_then(|p| p.get(name));
    let string = |name: &str| -> Result<String, String> {
        field(name)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{method} needs a string `params.{name}`"))
    };
    match protocol {
        Protocol::Mcp | Protocol::Http => {
            if method.starts_with("notifications/") {
                "mcp/notification".clone_into(&mut out.action);
            }
            match method {
                "tools/call" => {
                    let name = string("name")?;
                    out.resource = ("Tool", format!("{agent}/{name}"));
                    out.tool = Some(name);
                    arguments(field("arguments"), &mut out)?;
                }
                "resources/read" => {
                    let uri = string("uri")?;
                    out.resource = ("Resource", format!("{agent}/{uri}"));
                    out.target = Some(uri);
                }
                "prompts/get" => {
                    out.target = Some(string("name")?);
                    arguments(field("arguments"), &mut out)?;
                }
                _ => {}
            }
        }
        Protocol::A2a => {
            out.action = a2a_action(method).unwrap_or(method).to_owned();
            if out.action.starts_with("message/") {
                let skill = skill(params)?;
                if let Some(skill) = skill {
                    out.resource = ("Skill", format!("{agent}/{skill}"));
                    out.tool = Some(skill);
                }
            }
        }
    }
    Ok(out)
}

/// A2A methods under the v0.3 names the schema declares; v1.0 (a2a-sdk 1.x)
/// spells them in PascalCase.
fn a2a_action(method: &str) -> Option<&'static str> {
    Some(match method {
        "message/send" | "SendMessage" => "message/send",
        "message/stream" | "SendStreamingMessage" => "message/stream",
        "tasks/get" | "GetTask" => "tasks/get",
        "tasks/cancel" | "CancelTask" => "tasks/cancel",
        "tasks/list" | "ListTasks" => "tasks/list",
        "tasks/resubscribe" | "SubscribeToTask" => "tasks/resubscribe",
        "agent/getAuthenticatedExtendedCard" | "GetExtendedAgentCard" => {
            "agent/getAuthenticatedExtendedCard"
        }
        m if m.starts_with("tasks/pushNotificationConfig/")
            || (m.ends_with("TaskPushNotificationConfig") && m.len() < 64) =>
        {
            "tasks/pushNotificationConfig"
        }
        _ => return None,
    })
}

/// The skill an A2A message names: metadata `skill` on the message, or on
/// the params. Two different ones are refused (which would the agent use?).
fn skill(params: Option<&Json>) -> Result<Option<String>, String> {
    let read = |metadata: Option<&Json>| -> Result<Option<String>, String> {
        match metadata.and_then(|m| m.get("skill")) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err("metadata `skill` must be a non-empty string".to_owned()),
        }
    };
    let on_message = read(
        params
            .and_then(|p| p.get("message"))
            .and_then(|m| m.get("metadata")),
    )?;
    let on_params = read(params.and_then(|p| p.get("metadata")))?;
    match (on_message, on_params) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "the message names skill {a:?} and the request skill {b:?}; name one"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// Fills the bounded argument view policies read.
fn arguments(args: Option<&Json>, out: &mut Call) -> Result<(), String> {
    let Some(args) = args else { return Ok(()) };
    let Json::Object(map) = args else {
        if args.is_null() {
            return Ok(());
        }
        return Err("`params.arguments` must be an object".to_owned());
    };
    out.arguments_truncated = map.len() > MAX_ARGUMENTS;
    for (name, value) in map.iter().take(MAX_ARGUMENTS) {
        let text = match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let entry = format!("{name}={text}");
        out.arguments_truncated |= entry.len() > MAX_ARGUMENT_BYTES;
        out.arguments.push(truncate(entry, MAX_ARGUMENT_BYTES));
        out.argument_names
            .push(truncate(name.clone(), MAX_ARGUMENT_BYTES));
    }
    Ok(())
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Decides, for one caller, which tools and skills of one agent it may see.
#[derive(Debug, Clone)]
pub struct Visibility {
    engine: Arc<Engine>,
    caller: String,
    agent: String,
    protocol: Protocol,
    context: Context,
}

impl Visibility {
    /// For `caller` looking at `agent`'s app; `context` is the carrying
    /// request's base context.
    pub fn new(
        engine: Arc<Engine>,
        caller: &str,
        agent: &str,
        protocol: Protocol,
        context: Context,
    ) -> Self {
        Self {
            engine,
            caller: caller.to_owned(),
            agent: agent.to_owned(),
            protocol,
            context,
        }
    }

    /// Whether the caller may call the tool (MCP) or send to the skill (A2A),
    /// asked without arguments: a tool whose permit depends on arguments is
    /// hidden, never shown by mistake.
    pub fn may_use(&self, name: &str) -> bool {
        match self.protocol {
            Protocol::A2a => self.may("message/send", "Skill", name, None),
            _ => self.may("tools/call", "Tool", name, None),
        }
    }

    /// Whether the caller may do `action` on `kind::"<agent>/<name>"` (or on
    /// the agent itself for `Agent`), with `target` in the context.
    fn may(&self, action: &str, kind: &'static str, name: &str, target: Option<&str>) -> bool {
        let resource = if kind == "Agent" {
            self.agent.clone()
        } else {
            format!("{}/{name}", self.agent)
        };
        let call = Call {
            id: None,
            method: action.to_owned(),
            action: action.to_owned(),
            tool: (kind != "Agent" && target.is_none()).then(|| name.to_owned()),
            target: target.map(str::to_owned),
            resource: (kind, resource),
            arguments: Vec::new(),
            argument_names: Vec::new(),
            arguments_truncated: false,
            args_sha256: [0; 32],
        };
        let uid = |t: &str, id: &str| ward_policy::json::uid(t, id).ok();
        let (Some(principal), Some(action), Some(resource)) = (
            uid("Agent", &self.caller),
            uid("Action", action),
            uid(kind, &call.resource.1),
        ) else {
            return false;
        };
        let context = call.context(self.protocol, self.context.clone());
        self.engine
            .decide(&ward_policy::Request::new(
                principal, action, resource, context,
            ))
            .is_allowed()
    }

    /// Filters one JSON-RPC response message in place if it answers one of
    /// `ids`: what the listing names and the caller may not use is removed
    /// (MCP tools it may not call, resources it may not read, prompts it
    /// may not get; A2A skills in an extended card). Returns how many were
    /// removed, `None` if it is not such a response.
    pub fn filter_answer(&self, message: &mut Json, ids: &[(Json, Listing)]) -> Option<usize> {
        let id = message.get("id")?;
        let listing = ids.iter().find(|(i, _)| i == id)?.1;
        let result = message.get_mut("result")?;
        let (field, key) = match listing {
            Listing::Card => return Some(self.filter_card(result)),
            Listing::Tools => ("tools", "name"),
            Listing::Resources => ("resources", "uri"),
            Listing::Prompts => ("prompts", "name"),
        };
        let items = result.get_mut(field)?.as_array_mut()?;
        let before = items.len();
        items.retain(|item| {
            item.get(key)
                .and_then(Json::as_str)
                .is_some_and(|n| match listing {
                    Listing::Resources => self.may("resources/read", "Resource", n, Some(n)),
                    Listing::Prompts => self.may("prompts/get", "Agent", n, Some(n)),
                    _ => self.may_use(n),
                })
        });
        Some(before - items.len())
    }

    /// Filters a body that may be one response or a batch of them.
    pub fn filter_answers(&self, body: &mut Json, ids: &[(Json, Listing)]) -> usize {
        match body {
            Json::Array(items) => items
                .iter_mut()
                .filter_map(|m| self.filter_answer(m, ids))
                .sum(),
            message => self.filter_answer(message, ids).unwrap_or(0),
        }
    }

    /// Filters an A2A agent card's `skills` in place; returns how many were
    /// removed.
    pub fn filter_card(&self, card: &mut Json) -> usize {
        let Some(skills) = card.get_mut("skills").and_then(Json::as_array_mut) else {
            return 0;
        };
        let before = skills.len();
        skills.retain(|s| {
            s.get("id")
                .and_then(Json::as_str)
                .is_some_and(|n| self.may_use(n))
        });
        before - skills.len()
    }
}

/// A discovery answer filtered per caller, by the request that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// MCP `tools/list`: tools the caller may `tools/call`.
    Tools,
    /// MCP `resources/list`: resources it may `resources/read`.
    Resources,
    /// MCP `prompts/list`: prompts it may `prompts/get`.
    Prompts,
    /// A2A extended agent card: skills it may `message/send` to.
    Card,
}

impl Listing {
    /// The listing a call's answer is, if any.
    pub fn of(action: &str) -> Option<Self> {
        Some(match action {
            "tools/list" => Self::Tools,
            "resources/list" => Self::Resources,
            "prompts/list" => Self::Prompts,
            "agent/getAuthenticatedExtendedCard" => Self::Card,
            _ => return None,
        })
    }
}

/// Paths at which A2A agents publish their card (current and pre-0.3).
pub fn is_agent_card_path(path: &str) -> bool {
    matches!(
        path,
        "/.well-known/agent-card.json" | "/.well-known/agent.json"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use serde_json::json;

    fn envelope(body: &Json) -> Envelope {
        crate::jsonrpc::parse(body.to_string().as_bytes(), 32, 64).unwrap()
    }

    #[test]
    fn mcp_calls_name_the_tool_and_bound_the_arguments() {
        let long = "x".repeat(1000);
        let body = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "delete_records", "arguments": {"table": "users", "n": 3, "long": long}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": "r", "method": "resources/read", "params": {"uri": "file:///etc/passwd"}},
            {"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "greet"}},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        ]);
        let calls = calls(Protocol::Mcp, "tools", &envelope(&body)).unwrap();
        assert_eq!(calls[0].action, "tools/call");
        assert_eq!(
            calls[0].resource,
            ("Tool", "tools/delete_records".to_owned())
        );
        assert_eq!(calls[0].tool.as_deref(), Some("delete_records"));
        assert!(calls[0].arguments.contains(&"table=users".to_owned()));
        assert!(calls[0].arguments.contains(&"n=3".to_owned()));
        assert!(
            calls[0]
                .arguments
                .iter()
                .all(|a| a.len() <= MAX_ARGUMENT_BYTES)
        );
        assert!(calls[0].arguments_truncated, "the long argument was cut");
        let mut names = calls[0].argument_names.clone();
        names.sort();
        assert_eq!(names, vec!["long", "n", "table"]);
        assert_eq!(calls[1].action, "mcp/notification");
        assert_eq!(calls[1].id, None);
        assert_eq!(
            calls[2].resource,
            ("Resource", "tools/file:///etc/passwd".to_owned())
        );
        assert_eq!(calls[3].target.as_deref(), Some("greet"));
        assert_eq!(calls[3].resource.0, "Agent");
        assert_eq!(calls[4].action, "tools/list");
        assert_ne!(calls[0].args_sha256, calls[4].args_sha256);

        let nameless = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}});
        let err = super::calls(Protocol::Mcp, "tools", &envelope(&nameless)).unwrap_err();
        assert!(err.to_string().contains("params.name"), "{err}");
        let bad_args = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": "x", "arguments": [1]}});
        assert!(super::calls(Protocol::Mcp, "tools", &envelope(&bad_args)).is_err());
    }

    #[test]
    fn a2a_methods_map_to_the_schema_names_and_skills_to_resources() {
        for (method, action) in [
            ("SendMessage", "message/send"),
            ("message/send", "message/send"),
            ("SendStreamingMessage", "message/stream"),
            ("GetTask", "tasks/get"),
            ("CancelTask", "tasks/cancel"),
            (
                "CreateTaskPushNotificationConfig",
                "tasks/pushNotificationConfig",
            ),
            (
                "tasks/pushNotificationConfig/set",
                "tasks/pushNotificationConfig",
            ),
            ("Unheard", "Unheard"),
        ] {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
            let calls = calls(Protocol::A2a, "bank", &envelope(&body)).unwrap();
            assert_eq!(calls[0].action, action, "{method}");
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": {"role": "ROLE_USER", "metadata": {"skill": "wire_funds"}}}});
        let calls = calls(Protocol::A2a, "bank", &envelope(&body)).unwrap();
        assert_eq!(calls[0].resource, ("Skill", "bank/wire_funds".to_owned()));
        let conflicting = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"metadata": {"skill": "summarize"},
                       "message": {"metadata": {"skill": "wire_funds"}}}});
        assert!(super::calls(Protocol::A2a, "bank", &envelope(&conflicting)).is_err());
        let no_skill =
            json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {}}});
        let calls = super::calls(Protocol::A2a, "bank", &envelope(&no_skill)).unwrap();
        assert_eq!(calls[0].resource, ("Agent", "bank".to_owned()));
    }
}
