//! Loading a policy bundle from a directory: every `*.cedar` file is a policy
//! file and an optional `schema.cedarschema` extends Ward's default schema.
//!
//! The only module that does I/O; it reads the files and hands their text to
//! the I/O-free loaders, so the errors are the same as theirs.

use std::path::Path;

use crate::policy_set::PolicySet;
use crate::problem::{LoadError, Problem};
use crate::schema::Schema;

/// The schema extension file a bundle may contain.
pub const SCHEMA_FILE: &str = "schema.cedarschema";

/// A loaded bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Ward's schema plus the bundle's extension, if any.
    pub schema: Schema,
    /// The bundle's policies.
    pub policies: PolicySet,
}

/// Loads the bundle in `dir` (not recursive). Files are named by their file
/// name in errors and in the policy version.
pub fn load_dir(dir: &Path) -> Result<Bundle, LoadError> {
    let io = |what: &str, err: std::io::Error| {
        LoadError::new(vec![Problem::new(format!("{what}: {err}"))])
    };
    let mut files = Vec::new();
    let mut schema_text = None;
    let entries = std::fs::read_dir(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(&dir.display().to_string(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == SCHEMA_FILE {
            schema_text = Some(std::fs::read_to_string(&path).map_err(|e| io(&name, e))?);
        } else if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&name, e))?;
            files.push((name, text));
        }
    }
    files.sort();
    let schema = match &schema_text {
        Some(text) => Schema::with_fragments([(SCHEMA_FILE, text.as_str())])?,
        None => Schema::ward()?,
    };
    let policies = PolicySet::load(&schema, files.iter().map(|(n, t)| (n.as_str(), t.as_str())))?;
    Ok(Bundle { schema, policies })
}
