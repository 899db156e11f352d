//! `ward server run --config FILE`: the typed server configuration.
//!
//! Precedence, lowest first: built-in defaults, the file, `WARD_*`
//! environment variables, command-line flags (clap merges the last two).
//! The defaults work unchanged, so the file is optional.
//!
//! The file is checked strictly and *completely*: unknown keys (with a
//! suggestion), wrong types and bad values are all collected and reported
//! together, each with its line and column and how to fix it, so an
//! operator fixes a config in one round instead of one error per restart.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

/// Defaults every setting falls back to.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default SVID lifetime.
pub(crate) const DEFAULT_SVID_TTL: &str = "15m";

/// Settings from the `[server]` table of a config file; `None` = not set.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ServerFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) store: Option<String>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) svid_ttl: Option<Duration>,
    pub(crate) policy_dir: Option<PathBuf>,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    /// 1-based line and column, when known.
    pub(crate) at: Option<(usize, usize)>,
    /// Dotted key path, e.g. `server.listen`.
    pub(crate) key: String,
    /// What is wrong and how to fix it.
    pub(crate) message: String,
}

/// Every problem found in a config file.
#[derive(Debug)]
pub(crate) struct ConfigErrors {
    pub(crate) path: PathBuf,
    pub(crate) problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{} in the configuration",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.at {
                Some((line, col)) => write!(
                    f,
                    "\n  {}:{line}:{col}: {}: {}",
                    self.path.display(),
                    p.key,
                    p.message
                )?,
                None => write!(f, "\n  {}: {}: {}", self.path.display(), p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const SERVER_KEYS: &[&str] = &["data_dir", "store", "listen", "svid_ttl", "policy_dir"];
const TOP_KEYS: &[&str] = &["server"];

type Table = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// Reads and checks a config file.
pub(crate) fn load(path: &Path) -> Result<ServerFile, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        path: path.to_owned(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![Problem {
            at: None,
            key: "(file)".to_owned(),
            message: format!("cannot read it: {e}"),
        }])
    })?;
    parse(&text).map_err(fail)
}

/// Checks config text; every problem at once.
pub(crate) fn parse(text: &str) -> Result<ServerFile, Vec<Problem>> {
    let top: Table = toml::from_str(text).map_err(|e| {
        vec![Problem {
            at: e.span().map(|s| line_col(text, s.start)),
            key: "(syntax)".to_owned(),
            message: format!(
                "{}; see the configuration reference in README.md",
                e.message().trim_end()
            ),
        }]
    })?;
    let mut problems = Vec::new();
    let mut out = ServerFile::default();
    for (key, value) in &top {
        if key.get_ref() != "server" {
            problems.push(unknown(text, key, "", TOP_KEYS));
            continue;
        }
        let Some(table) = value.get_ref().as_table() else {
            problems.push(at(
                text,
                value.span().start,
                "server",
                "must be a table: write `[server]` on its own line".to_owned(),
            ));
            continue;
        };
        server_table(text, table, &mut out, &mut problems);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| p.at);
        Err(problems)
    }
}

fn server_table(
    text: &str,
    table: &toml::Table,
    out: &mut ServerFile,
    problems: &mut Vec<Problem>,
) {
    for (key, value) in table {
        let path = format!("server.{key}");
        let pos = find_key(text, "server", key);
        let mut bad = |message: String| {
            problems.push(Problem {
                at: pos,
                key: path.clone(),
                message,
            });
        };
        match key.as_str() {
            "data_dir" => match value.as_str() {
                Some(s) if !s.is_empty() => out.data_dir = Some(PathBuf::from(s)),
                _ => bad("must be a non-empty string path, e.g. `data_dir = \"/var/lib/ward\"`".to_owned()),
            },
            "policy_dir" => match value.as_str() {
                Some(s) if !s.is_empty() => out.policy_dir = Some(PathBuf::from(s)),
                _ => bad("must be a non-empty string path to a policy bundle directory".to_owned()),
            },
            "store" => match value.as_str() {
                Some(s) if s.starts_with("sqlite:") || s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                    out.store = Some(s.to_owned());
                }
                _ => bad("must be a store URL string: `sqlite:///path/ward.db` or `postgres://user@host/db`".to_owned()),
            },
            "listen" => match value.as_str().map(str::parse::<SocketAddr>) {
                Some(Ok(addr)) => out.listen = Some(addr),
                _ => bad(format!("must be an address string like \"{DEFAULT_LISTEN}\"")),
            },
            "svid_ttl" => match value.as_str().map(crate::cmd::parse_duration) {
                Some(Ok(d)) if d.as_secs() >= 60 && d.as_secs() <= 86_400 => out.svid_ttl = Some(d),
                Some(Ok(_)) => bad("must be between 1m and 24h".to_owned()),
                _ => bad("must be a duration string like \"15m\" or \"1h\"".to_owned()),
            },
            _ => {
                let suggestion = suggest(key, SERVER_KEYS);
                bad(format!(
                    "unknown key{}; known keys in [server]: {}",
                    suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
                    SERVER_KEYS.join(", ")
                ));
            }
        }
    }
}

fn unknown(text: &str, key: &Spanned<String>, prefix: &str, known: &[&str]) -> Problem {
    let name = key.get_ref();
    at(
        text,
        key.span().start,
        &format!("{prefix}{name}"),
        format!(
            "unknown key{}; known: {}",
            suggest(name, known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default(),
            known.join(", ")
        ),
    )
}

fn at(text: &str, offset: usize, key: &str, message: String) -> Problem {
    Problem {
        at: Some(line_col(text, offset)),
        key: key.to_owned(),
        message,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// Where `key` is written inside `[table]` (or as `table.key`), found in
/// the text because a parsed table keeps no positions for nested keys.
fn find_key(text: &str, table: &str, key: &str) -> Option<(usize, usize)> {
    let mut in_table = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('[') {
            in_table = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .is_some_and(|t| t.trim() == table);
        } else {
            let lhs = trimmed.split('=').next().unwrap_or("").trim();
            let lhs = lhs.trim_matches('"');
            if (in_table && lhs == key) || lhs == format!("{table}.{key}") {
                return Some(line_col(text, offset + indent));
            }
        }
        offset += line.len();
    }
    None
}

/// The known key closest to `key`, if it is a plausible typo.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), ServerFile::default());
        assert_eq!(
            parse("# nothing\n[server]\n").unwrap(),
            ServerFile::default()
        );
    }

    #[test]
    fn full_file() {
        let f = parse(
            "[server]\ndata_dir = \"/var/lib/ward\"\nstore = \"postgres://u@h/db\"\nlisten = \"0.0.0.0:9443\"\nsvid_ttl = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(f.data_dir.unwrap(), PathBuf::from("/var/lib/ward"));
        assert_eq!(f.store.unwrap(), "postgres://u@h/db");
        assert_eq!(f.listen.unwrap().port(), 9443);
        assert_eq!(f.svid_ttl.unwrap().as_secs(), 3600);
    }

    #[test]
    fn every_problem_at_once_with_positions() {
        let text = "[server]\nlisten = \"nowhere\"\nsvid_tl = \"15m\"\nsvid_ttl = 15\nstore = \"mysql://x\"\n\n[proxy]\nx = 1\n";
        let problems = parse(text).unwrap_err();
        let render: Vec<String> = problems
            .iter()
            .map(|p| format!("{:?} {} {}", p.at, p.key, p.message))
            .collect();
        assert_eq!(problems.len(), 5, "{render:#?}");
        let find = |k: &str| problems.iter().find(|p| p.key == k).unwrap();
        assert_eq!(find("server.listen").at, Some((2, 1)));
        assert!(
            find("server.svid_tl")
                .message
                .contains("did you mean `svid_ttl`")
        );
        assert_eq!(find("server.svid_tl").at, Some((3, 1)));
        assert!(find("server.svid_ttl").message.contains("duration string"));
        assert!(find("server.store").message.contains("postgres://"));
        assert_eq!(find("proxy").at, Some((7, 2)));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let problems = parse("[server]\nlisten = \n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "(syntax)");
        assert_eq!(problems[0].at.unwrap().0, 2);
        assert!(
            parse("[server]\nsvid_ttl = \"5s\"\n").unwrap_err()[0]
                .message
                .contains("between 1m and 24h")
        );
        assert!(
            parse("server = 1\n").unwrap_err()[0]
                .message
                .contains("[server]")
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("lisen", SERVER_KEYS), Some("listen"));
        assert_eq!(suggest("datadir", SERVER_KEYS), Some("data_dir"));
        assert_eq!(suggest("completely_else", SERVER_KEYS), None);
    }
}
