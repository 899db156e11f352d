//! `ward audit …`: the auditor's view of the tamper-evident log.
//!
//! - `verify --from-dir DIR`: offline check of a mirrored C2SP tlog-tiles
//!   directory against signed checkpoints; `verify` without it fetches the
//!   log from the server first (optionally keeping it with `--mirror`).
//! - `checkpoint`, `tail`, `query`, `prove`: through the server's
//!   `/v1/audit` API; every proof is checked here, against a checkpoint
//!   whose signature is checked here, never taken on the server's word.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Value, json};
use ward_audit::checkpoint::Origin;
use ward_audit::note::NoteVerifier;
use ward_audit::store::fs::FsStore;
use ward_audit::tile::{BundleId, TileId};
use ward_audit::{Hash, InclusionProof, LeafIndex, LogPath, SignedCheckpoint, TileStore, TreeSize};
use ward_client::Client;

use crate::cli::{AuditArgs, AuditCommand, Output};
use crate::cmd::client;
use crate::table;

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let output = args.conn.output;
    if let AuditCommand::Verify {
        from_dir: Some(dir),
        vkey,
        origin,
        checkpoints,
        ..
    } = &args.command
    {
        let vkey = vkey.as_deref().context(
            "--vkey is required with --from-dir: the log's verifier key (`ward audit checkpoint` prints it)",
        )?;
        return verify_dir(dir, vkey, origin.as_deref(), checkpoints, output);
    }
    let api = client::connect(&args.conn)?;
    client::runtime()?.block_on(async move {
        match args.command {
            AuditCommand::Verify {
                mirror,
                vkey,
                origin,
                checkpoints,
                ..
            } => verify_server(&api, mirror, vkey, origin, &checkpoints, output).await,
            AuditCommand::Checkpoint { vkey, save } => checkpoint(&api, vkey, save, output).await,
            AuditCommand::Tail { lines, follow } => tail(&api, lines, follow, output).await,
            AuditCommand::Query {
                agent,
                since,
                until,
                decision,
                policy,
                decision_id,
                limit,
            } => {
                let mut params = vec![format!("limit={}", limit.clamp(1, 1000))];
                if let Some(a) = agent {
                    params.push(format!("agent={}", encode(&a)));
                }
                if let Some(s) = since {
                    params.push(format!("since={}", time_arg(&s, "--since")?));
                }
                if let Some(u) = until {
                    params.push(format!("until={}", time_arg(&u, "--until")?));
                }
                if let Some(d) = decision {
                    params.push(format!("decision={d}"));
                }
                if let Some(p) = policy {
                    params.push(format!("policy={}", encode(&p)));
                }
                if let Some(id) = &decision_id {
                    params.push(format!("decision_id={}", encode(id.trim())));
                }
                let page: Page = api
                    .get(&format!("/v1/audit/records?{}", params.join("&")))
                    .await?;
                if let Some(id) = decision_id {
                    return show_decision(&id, &page, output);
                }
                print_records(&page.records, output)?;
                if output == Output::Text && page.indexed_below < page.tree_size {
                    eprintln!(
                        "note: the index is {} entries behind the log; re-run for the newest",
                        page.tree_size - page.indexed_below
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Prove { index, vkey } => prove(&api, index, vkey, output).await,
        }
    })
}

#[derive(Debug, Deserialize)]
struct Info {
    origin: String,
    verifier_key: String,
}

#[derive(Debug, Deserialize)]
struct Page {
    records: Vec<Value>,
    tree_size: u64,
    indexed_below: u64,
    next_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Proof {
    size: u64,
    hashes: Vec<String>,
    entry: Option<String>,
}

/// The verifier to check checkpoints with: the pinned one, or the server's
/// announced one (said so on stderr — it proves only that the server signed).
pub(crate) async fn verifier(
    api: &Client,
    pinned: Option<String>,
) -> anyhow::Result<(NoteVerifier, Origin)> {
    let info: Info = api.get("/v1/audit").await?;
    let key = match pinned {
        Some(k) => k,
        None => {
            eprintln!(
                "note: checking against the verifier key the server announces; pin it with --vkey {}",
                info.verifier_key
            );
            info.verifier_key.clone()
        }
    };
    let verifier: NoteVerifier = key.trim().parse().map_err(|e| {
        anyhow::anyhow!("--vkey: {e}; expected a signed-note verifier key `name+hash+base64`")
    })?;
    let origin = Origin::new(&info.origin)
        .map_err(|e| anyhow::anyhow!("the server's log origin {:?}: {e}", info.origin))?;
    Ok((verifier, origin))
}

async fn signed_checkpoint(
    api: &Client,
    verifier: &NoteVerifier,
    origin: &Origin,
) -> anyhow::Result<(Vec<u8>, SignedCheckpoint)> {
    let note = api.get_bytes("/v1/audit/log/checkpoint").await?.to_vec();
    let signed = SignedCheckpoint::open(&note, std::slice::from_ref(verifier), origin)
        .map_err(|e| anyhow::anyhow!("the server's checkpoint does not verify: {e}"))?;
    Ok((note, signed))
}

async fn checkpoint(
    api: &Client,
    vkey: Option<String>,
    save: Option<PathBuf>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let (verifier, origin) = verifier(api, vkey).await?;
    let (note, signed) = signed_checkpoint(api, &verifier, &origin).await?;
    if let Some(path) = &save {
        std::fs::write(path, &note).with_context(|| format!("writing {}", path.display()))?;
    }
    let cp = signed.checkpoint();
    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "origin": origin.as_str(),
            "size": cp.size().get(),
            "root": cp.root().to_base64(),
            "verifier_key": verifier.to_string(),
            "signature": "verified",
        }))?,
        Output::Text => print!(
            "{}",
            table::fields(&[
                ("origin", origin.as_str().to_owned()),
                ("size", cp.size().get().to_string()),
                ("root", cp.root().to_base64()),
                ("signature", "verified".to_owned()),
                ("verifier key", verifier.to_string()),
            ])
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn tail(api: &Client, lines: u64, follow: bool, output: Output) -> anyhow::Result<ExitCode> {
    let page: Page = api
        .get(&format!("/v1/audit/records?last={}", lines.clamp(1, 1000)))
        .await?;
    print_records(&page.records, output)?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut after = page.next_after.or(page.indexed_below.checked_sub(1));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let path = match after {
            Some(a) => format!("/v1/audit/records?after={a}&limit=1000"),
            None => "/v1/audit/records?limit=1000".to_owned(),
        };
        let page: Page = api.get(&path).await?;
        if !page.records.is_empty() {
            print_rows(&page.records, output, false)?;
            after = page.next_after.or(after);
        }
    }
}

/// `audit query --decision-id`: the record whole, or why there is none.
fn show_decision(id: &str, page: &Page, output: Output) -> anyhow::Result<ExitCode> {
    let behind = page.tree_size.saturating_sub(page.indexed_below);
    let Some(found) = page.records.first() else {
        let mut why = format!("no logged decision has id {id:?}");
        if behind > 0 {
            why.push_str(&format!(
                "; the index is {behind} entries behind the log, so re-run in a moment"
            ));
        }
        why.push_str(
            ". A proxy ships its records within seconds while the server is reachable; \
             records still waiting show as ward_proxy_audit_backlog_records on its admin /metrics.",
        );
        if output == Output::Json {
            println!(
                "{}",
                json!({ "decision_id": id, "found": false, "error": why })
            );
        } else {
            eprintln!("error: {why}");
        }
        return Ok(ExitCode::FAILURE);
    };
    if output == Output::Json {
        for r in &page.records {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    for r in &page.records {
        print_detail(r);
    }
    if page.records.len() > 1 {
        // At-least-once shipping can log one decision twice after a crash.
        eprintln!(
            "note: {} log entries carry this id (a batch re-sent after a lost acknowledgement)",
            page.records.len()
        );
    }
    println!("\nprove it: ward audit prove {}", found["index"]);
    Ok(ExitCode::SUCCESS)
}

/// One record, field by field.
fn print_detail(entry: &Value) {
    let rec = &entry["record"];
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    let ms = rec["time_ms"].as_i64().unwrap_or(0);
    let request = &rec["request"];
    let mut rows = vec![
        ("index", entry["index"].to_string()),
        ("decision id", text(&rec["decision_id"])),
        (
            "time",
            format!("{} ({ms} ms)", crate::cmd::rfc3339(ms / 1000)),
        ),
        ("decision", text(&rec["decision"]).to_uppercase()),
        ("principal", text(&rec["principal"])),
        ("action", text(&rec["action"])),
        ("resource", text(&rec["resource"])),
        ("policies", text(&rec["policies"])),
        ("reasons", text(&rec["reasons"])),
        ("policy version", text(&rec["policy_version"])),
        ("decided by", text(&rec["proxy_id"])),
        (
            "request",
            format!("{} {}", text(&request["method"]), text(&request["path"])),
        ),
        ("body sha-256", text(&request["body_sha256"])),
        ("trace id", text(&rec["trace_id"])),
        ("peer cert serial", text(&rec["peer_cert_serial"])),
    ];
    if let Some(rpc) = rec.get("rpc") {
        rows.push(("rpc", rpc.to_string()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}

fn print_records(records: &[Value], output: Output) -> anyhow::Result<()> {
    print_rows(records, output, true)
}

fn print_rows(records: &[Value], output: Output, header: bool) -> anyhow::Result<()> {
    if output == Output::Json {
        for r in records {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let rec = &r["record"];
            let text = |k: &str| rec[k].as_str().unwrap_or("-").to_owned();
            let ms = rec["time_ms"].as_i64().unwrap_or(0);
            vec![
                r["index"].to_string(),
                crate::cmd::rfc3339(ms / 1000),
                text("decision").to_uppercase(),
                text("principal"),
                text("action"),
                match rec
                    .get("rpc")
                    .and_then(|c| c.get("target"))
                    .and_then(Value::as_str)
                {
                    // The JSON-RPC call's tool or skill says more than
                    // the resource when the resource is the agent.
                    Some(target) if !text("resource").contains(target) => {
                        format!("{} ({target})", text("resource"))
                    }
                    _ => text("resource"),
                },
                rec["reasons"]
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ]
        })
        .collect();
    let rendered = table::render(
        &[
            "INDEX",
            "TIME",
            "DECISION",
            "PRINCIPAL",
            "ACTION",
            "RESOURCE",
            "REASON",
        ],
        &rows,
    );
    if header {
        print!("{rendered}");
    } else {
        // Following: skip the header line of each later chunk.
        for line in rendered.lines().skip(1) {
            println!("{line}");
        }
    }
    Ok(())
}

async fn prove(
    api: &Client,
    index: u64,
    vkey: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let (verifier, origin) = verifier(api, vkey).await?;
    let Proved {
        size,
        root,
        record,
        verdict,
    } = prove_entry(api, index, &verifier, &origin).await?;
    match (&verdict, output) {
        (Ok(()), Output::Json) => crate::cmd::print_json(&json!({
            "included": true, "index": index, "size": size.get(),
            "root": root.to_base64(), "record": record,
        }))?,
        (Ok(()), Output::Text) => {
            println!(
                "entry {index} is included in the tree of size {} (root {}), signed by {}",
                size.get(),
                root.to_base64(),
                verifier.name()
            );
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        (Err(e), Output::Json) => crate::cmd::print_json(&json!({
            "included": false, "index": index, "error": e.to_string(),
        }))?,
        (Err(e), Output::Text) => eprintln!("PROOF FAILED for entry {index}: {e}"),
    }
    Ok(if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::cmd::EXIT_DENIED)
    })
}

/// An entry and the verdict on its inclusion proof.
pub(crate) struct Proved {
    /// The size of the signed tree the proof is against.
    pub(crate) size: TreeSize,
    /// That tree's root, from the checkpoint whose signature was checked.
    pub(crate) root: Hash,
    /// The entry (the audit record as JSON, or its text if it is not JSON).
    pub(crate) record: Value,
    /// Whether the proof leads from the entry's leaf hash to `root`.
    pub(crate) verdict: Result<(), ward_audit::ProofError>,
}

/// Fetches the latest checkpoint (its signature checked with `verifier`),
/// entry `index` and its inclusion proof, and verifies the proof here.
/// Errors when the checkpoint does not cover `index` yet.
pub(crate) async fn prove_entry(
    api: &Client,
    index: u64,
    verifier: &NoteVerifier,
    origin: &Origin,
) -> anyhow::Result<Proved> {
    let (_, signed) = signed_checkpoint(api, verifier, origin).await?;
    let cp = signed.checkpoint();
    if index >= cp.size().get() {
        anyhow::bail!(
            "entry {index} is not covered by the latest checkpoint (size {}); wait a second for the next one",
            cp.size().get()
        );
    }
    let proof: Proof = api
        .get(&format!("/v1/audit/proof/{index}?size={}", cp.size().get()))
        .await?;
    let entry = proof
        .entry
        .context("the server returned no entry with the proof")?;
    let path = proof
        .hashes
        .iter()
        .map(|h| Hash::from_base64(h).map_err(|e| anyhow::anyhow!("proof hash {h:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inclusion = InclusionProof::new(LeafIndex::new(index), TreeSize::new(proof.size), path);
    let leaf = ward_audit::leaf_hash(entry.as_bytes());
    let verdict = inclusion.verify(&leaf, &cp.root());
    let record: Value = serde_json::from_str(&entry).unwrap_or(Value::String(entry));
    Ok(Proved {
        size: cp.size(),
        root: cp.root(),
        record,
        verdict,
    })
}

/// Every public resource of the tree of `size`: its hash tiles at each
/// level and its entry bundles.
fn resources(size: TreeSize) -> Vec<LogPath> {
    let mut out = Vec::new();
    for level in 0u8..=ward_audit::tile::MAX_LEVEL {
        let mut any = false;
        for index in 0u64.. {
            let Some(tile) = TileId::in_tree(level, index, size) else {
                break;
            };
            out.push(LogPath::Tile(tile));
            any = true;
        }
        if !any {
            break;
        }
    }
    for index in 0u64.. {
        let Some(bundle) = BundleId::in_tree(index, size) else {
            break;
        };
        out.push(LogPath::Bundle(bundle));
    }
    out
}

async fn verify_server(
    api: &Client,
    mirror: Option<PathBuf>,
    vkey: Option<String>,
    origin: Option<String>,
    checkpoints: &[PathBuf],
    output: Output,
) -> anyhow::Result<ExitCode> {
    let (verifier, server_origin) = verifier(api, vkey).await?;
    let origin = match origin {
        Some(o) => Origin::new(&o).map_err(|e| anyhow::anyhow!("--origin {o:?}: {e}"))?,
        None => server_origin,
    };
    let temp;
    let dir = match &mirror {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let size = mirror_log(api, &verifier, &origin, &dir, output == Output::Text).await?;
    if let Some(d) = &mirror {
        eprintln!(
            "mirrored the log of size {} into {}",
            size.get(),
            d.display()
        );
    }
    let mut files = vec![dir.join("checkpoint")];
    files.extend(checkpoints.iter().cloned());
    verify_dir(
        &dir,
        &verifier.to_string(),
        Some(origin.as_str()),
        &files,
        output,
    )
}

/// Mirrors the server's log into `dir` (C2SP tlog-tiles layout): its
/// newest checkpoint, then every tile and entry bundle of the tree that
/// checkpoint names; returns that tree's size. Nothing is verified here
/// (see [`check_dir`]); a checkpoint that does not verify mirrors nothing
/// but itself, so the check then fails on it.
pub(crate) async fn mirror_log(
    api: &Client,
    verifier: &NoteVerifier,
    origin: &Origin,
    dir: &Path,
    progress: bool,
) -> anyhow::Result<TreeSize> {
    // The newest checkpoint is fetched first and the tree it names is
    // mirrored: later growth does not disturb the resources of that size.
    let note = api.get_bytes("/v1/audit/log/checkpoint").await?.to_vec();
    let size = SignedCheckpoint::open(&note, std::slice::from_ref(verifier), origin)
        .map(|s| s.checkpoint().size())
        .unwrap_or(TreeSize::ZERO);
    let store = FsStore::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let wanted = resources(size);
    let total = wanted.len();
    let show_progress = progress && total > 50;
    for (i, path) in wanted.into_iter().enumerate() {
        let bytes = api
            .get_bytes(&format!("/v1/audit/log/{path}"))
            .await
            .with_context(|| format!("fetching {path}"))?;
        store
            .write(&[(path, bytes.to_vec())])
            .with_context(|| format!("writing {path} into {}", dir.display()))?;
        if show_progress && (i + 1) % 100 == 0 {
            eprintln!("fetched {} of {total} tiles and bundles", i + 1);
        }
    }
    store
        .write(&[(LogPath::Checkpoint, note)])
        .with_context(|| format!("writing the checkpoint into {}", dir.display()))?;
    Ok(size)
}

/// `--since`/`--until` as unix millis: RFC 3339, or an age before now.
fn time_arg(text: &str, flag: &str) -> anyhow::Result<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX));
    }
    let age = crate::cmd::parse_duration(text).map_err(|_| {
        anyhow::anyhow!(
            "{flag} {text:?}: use RFC 3339 (2026-11-23T10:00:00Z) or an age such as 15m, 2h, 1d"
        )
    })?;
    let now = time::OffsetDateTime::now_utc() - age;
    Ok(i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn verify_dir(
    dir: &Path,
    vkey: &str,
    origin: Option<&str>,
    checkpoints: &[PathBuf],
    output: Output,
) -> anyhow::Result<ExitCode> {
    let verifier: NoteVerifier = vkey.trim().parse().map_err(|e| {
        anyhow::anyhow!("--vkey: {e}; expected a signed-note verifier key `name+hash+base64`")
    })?;
    match check_dir(dir, &verifier, origin, checkpoints)? {
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
        Err(message) => {
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

/// Verifies the log mirrored in `dir` against `checkpoints` (default:
/// `dir/checkpoint`): every signature, their consistency, the tree
/// recomputed from the entries. The outer error is a file that could not
/// be read; the inner one the verification failure, with its causes, naming
/// the first bad index.
pub(crate) fn check_dir(
    dir: &Path,
    verifier: &NoteVerifier,
    origin: Option<&str>,
    checkpoints: &[PathBuf],
) -> anyhow::Result<Result<ward_audit::verify::VerifiedLog, String>> {
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
    Ok(
        ward_audit::verify::verify_log(&store, &notes, verifier, &origin).map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            message
        }),
    )
}
