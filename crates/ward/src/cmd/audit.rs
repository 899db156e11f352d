//! `ward audit verify --from-dir`: an auditor's offline check of a mirrored
//! log (C2SP tlog-tiles directory) against signed checkpoints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use ward_audit::checkpoint::Origin;
use ward_audit::note::NoteVerifier;
use ward_audit::store::fs::FsStore;

use crate::cli::Output;

pub(crate) fn verify(
    dir: &Path,
    vkey: &str,
    origin: Option<&str>,
    checkpoints: &[PathBuf],
    output: Output,
) -> anyhow::Result<ExitCode> {
    let verifier: NoteVerifier = vkey.trim().parse().map_err(|e| {
        anyhow::anyhow!("--vkey: {e}; expected a signed-note verifier key `name+hash+base64`")
    })?;
    let files: Vec<PathBuf> = if checkpoints.is_empty() {
        vec![dir.join("checkpoint")]
    } else {
        checkpoints.to_vec()
    };
    let mut notes = Vec::with_capacity(files.len());
    for file in &files {
        notes.push(
            std::fs::read(file)
                .with_context(|| format!("reading checkpoint {}", file.display()))?,
        );
    }
    // The origin is pinned with --origin; otherwise it is read from the
    // first checkpoint, whose signature must still verify with --vkey.
    let origin_text = match origin {
        Some(o) => o.to_owned(),
        None => notes
            .first()
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|t| t.lines().next())
            .map(str::to_owned)
            .context("the first checkpoint is empty; pass --origin")?,
    };
    let origin =
        Origin::new(&origin_text).map_err(|e| anyhow::anyhow!("origin {origin_text:?}: {e}"))?;
    let store = FsStore::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    match ward_audit::verify::verify_log(&store, &notes, &verifier, &origin) {
        Ok(verified) => {
            match output {
                Output::Json => crate::cmd::print_json(&json!({
                    "verified": true,
                    "size": verified.size.get(),
                    "root": verified.root.to_string(),
                    "checkpoints": verified.checkpoints,
                }))?,
                Output::Text => println!(
                    "verified: {} entries, root {}, {} checkpoint{} consistent",
                    verified.size.get(),
                    verified.root,
                    verified.checkpoints,
                    if verified.checkpoints == 1 { "" } else { "s" }
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            match output {
                Output::Json => {
                    crate::cmd::print_json(&json!({ "verified": false, "error": message }))?
                }
                Output::Text => eprintln!("VERIFICATION FAILED: {message}"),
            }
            Ok(ExitCode::from(crate::cmd::EXIT_DENIED))
        }
    }
}
