//! Command-line definition (clap derive). One file per subcommand lives in
//! `cmd/`; this file only declares the shape.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Ward: a zero-trust fabric for AI agents.
#[derive(Debug, Parser)]
#[command(name = "ward", version, long_about = None)]
#[cfg_attr(feature = "server", command(about))]
#[cfg_attr(
    not(feature = "server"),
    command(
        about = "Ward, sidecar build: the data plane (`proxy run`) with `svid` and `audit`. The control plane and the operator commands are in the default build."
    )
)]
pub(crate) struct Cli {
    /// Log filter in RUST_LOG syntax, e.g. `info,ward_identity=debug`
    /// [default: warn; error for `ward demo`, whose narration already says
    /// what happens].
    #[arg(long, global = true, env = "WARD_LOG")]
    pub(crate) log: Option<String>,
    /// Log line format on standard error.
    #[arg(long, global = true, env = "WARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl From<LogFormat> for ward_core::telemetry::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

/// Output format for commands that report something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Output {
    /// For people: aligned columns and short messages.
    #[default]
    #[value(name = "table", alias = "text")]
    Text,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    #[cfg(feature = "server")]
    /// The control plane: initialise a data directory, run the server.
    #[command(subcommand)]
    Server(ServerCommand),
    #[cfg(feature = "server")]
    /// The certificate authority: status and rotation (and offline `init`).
    #[command(subcommand)]
    Ca(CaCommand),
    /// X.509-SVIDs: mint from a local CA, inspect and verify.
    #[command(subcommand)]
    Svid(SvidCommand),
    #[cfg(feature = "server")]
    /// The agent registry: register, list, show, update, retire.
    Agent(AgentArgs),
    #[cfg(feature = "server")]
    /// Join tokens that let a proxy enroll an agent.
    Token(TokenArgs),
    #[cfg(feature = "server")]
    /// Issued certificates: revoke one by serial, list revocations.
    Cert(CertArgs),
    #[cfg(feature = "server")]
    /// Policy bundles as code: validate and test them offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The tamper-evident audit log: tail, query, prove and verify.
    Audit(AuditArgs),
    /// The data plane: the mTLS sidecar that authenticates, decides and
    /// records every call of one agent.
    #[command(subcommand)]
    Proxy(ProxyCommand),
    #[cfg(feature = "server")]
    /// See zero trust work in a minute: a server, three agents behind
    /// their own proxies and an MCP tool server, all in this process.
    ///
    /// Six scenes, narrated as they happen: an allowed call (mutual TLS,
    /// the verified caller), filtered MCP tool discovery, a destructive
    /// tool denied with the policy's reason, a per-caller rate limit, a
    /// revocation that cuts a live stream (with the proxies' receipts),
    /// and the audit log verified with an inclusion proof of the denial.
    /// Ends with a summary; exit 0 only if every scene went as expected
    /// (2 if one did not, 130 after Ctrl-C). Nothing outside this process
    /// is contacted; everything listens on 127.0.0.1 on free ports. The
    /// policy is examples/demo/policy. The narration goes to standard
    /// output; the components' own errors to standard error (`--log warn`
    /// or `--log info` shows more).
    Demo(DemoArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// No pauses between scenes (for CI and scripts). The demo never waits
    /// for input either way.
    #[arg(long)]
    pub(crate) non_interactive: bool,
    /// After the scenes, leave the server and proxies running and print
    /// commands to explore them (`ward audit tail`, `curl` through a
    /// proxy, ...) until Ctrl-C. A temporary working directory is kept.
    #[arg(long)]
    pub(crate) keep_running: bool,
    /// Working directory for the server's data and the proxies' state
    /// (created; must not hold an earlier demo). Kept afterwards. Default:
    /// a new temporary directory, removed at the end unless --keep-running.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Also write each scene's outcome to FILE as JSON: `{"scenes":
    /// [{"name", "expected", "observed", "ok", "decision_id", "details"}],
    /// "ok"}`.
    #[arg(long, value_name = "FILE")]
    pub(crate) summary_json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProxyCommand {
    /// Run a proxy for one agent.
    ///
    /// On first start it generates a key, enrolls with the join token (the
    /// server is authenticated with --bundle) and records its inbound
    /// address in the registry; later starts reuse the identity in
    /// --state-dir and keep enforcing the last-known-good policy while the
    /// server is down. The local app calls other agents through the
    /// outbound listener (`curl -H 'Host: other-agent' http://127.0.0.1:15001/`,
    /// or `HTTP_PROXY=http://127.0.0.1:15001`). Stops cleanly on SIGINT or
    /// SIGTERM.
    Run(Box<ProxyRunArgs>),
    #[cfg(feature = "server")]
    /// Every proxy the server has heard from: the control-plane revision it
    /// enforces, its lag, when it last reported, when its certificate
    /// expires.
    List {
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ProxyRunArgs {
    /// TOML config file (a `[proxy]` table; a `[server]` table beside it
    /// is ignored; see README.md). Settings come from defaults, then this
    /// file, then WARD_* variables, then flags.
    #[arg(long, env = "WARD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Control-plane address (host:port) [required here, in WARD_SERVER
    /// or as proxy.server].
    #[arg(long, env = "WARD_SERVER", value_parser = crate::config::server_addr)]
    pub(crate) server: Option<String>,
    /// The agent this proxy speaks for (registered with `ward agent
    /// register`) [required here, in WARD_AGENT or as proxy.agent].
    #[arg(long, env = "WARD_AGENT")]
    pub(crate) agent: Option<ward_core::AgentName>,
    /// Single-use join token from `ward token create`; only needed until
    /// the proxy has enrolled.
    #[arg(long, env = "WARD_JOIN_TOKEN", hide_env_values = true)]
    pub(crate) join_token: Option<String>,
    /// The server's trust bundle (its DATA_DIR/bundle.json), to
    /// authenticate the server at first enrollment.
    #[arg(long, env = "WARD_BUNDLE")]
    pub(crate) bundle: Option<PathBuf>,
    /// The local app (host:port, plain HTTP) [required here, in
    /// WARD_UPSTREAM or as proxy.upstream].
    #[arg(long, env = "WARD_UPSTREAM", value_parser = crate::config::host_port)]
    pub(crate) upstream: Option<String>,
    /// How to read the app's traffic: `mcp` (tools/call decided per tool,
    /// tools/list filtered), `a2a` (messages decided per skill, agent card
    /// filtered) or `http` [default: the agent's `protocol` label in the
    /// registry, else http; or proxy.protocol].
    #[arg(long, env = "WARD_PROTOCOL", value_name = "PROTOCOL")]
    pub(crate) protocol: Option<ward_proxy::rpc::Protocol>,
    /// Gateway mode: also front agent NAME whose app is at HOST:PORT
    /// (repeatable; adds to the file's [[proxy.route]] entries). Each route
    /// has its own identity, enrolled with a --route-token, and is picked
    /// by the TLS server name callers send.
    #[arg(long = "route", value_name = "NAME=HOST:PORT", value_parser = crate::config::route_flag)]
    pub(crate) routes: Vec<ward_proxy::config::Route>,
    /// Join token of a gateway route, NAME=TOKEN (repeatable; only until
    /// that agent has enrolled). NAME may be a --route or a
    /// [[proxy.route]] of the file.
    #[arg(
        long = "route-token",
        value_name = "NAME=TOKEN",
        hide_env_values = true
    )]
    pub(crate) route_tokens: Vec<String>,
    /// Keys, certificates, last-known-good state and the audit spool
    /// [default: ./ward-proxy-AGENT].
    #[arg(long, env = "WARD_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    // The settings below have no clap default: one would be
    // indistinguishable from a flag and override the config file. The
    // defaults are applied after merging (cmd/proxy.rs).
    /// Outbound listener for the local app (plain HTTP) [default:
    /// 127.0.0.1:15001].
    #[arg(long, env = "WARD_OUTBOUND")]
    pub(crate) outbound: Option<std::net::SocketAddr>,
    /// Inbound listener for other proxies (mutual TLS) [default:
    /// 127.0.0.1:15443].
    #[arg(long, env = "WARD_INBOUND")]
    pub(crate) inbound: Option<std::net::SocketAddr>,
    /// Address (host:port) other proxies dial [default: the inbound
    /// address].
    #[arg(long, env = "WARD_ADVERTISE", value_parser = crate::config::host_port)]
    pub(crate) advertise: Option<String>,
    /// Admin listener: /metrics, /healthz, /readyz [default:
    /// 127.0.0.1:15000].
    #[arg(long, env = "WARD_ADMIN")]
    pub(crate) admin: Option<std::net::SocketAddr>,
    /// Per-caller rate limit on inbound requests, RATE/s or RATE/s:BURST
    /// (e.g. 100/s:200) [default: unlimited].
    #[arg(long, env = "WARD_RATE_LIMIT")]
    pub(crate) rate_limit: Option<ward_proxy::RateLimit>,
    /// Largest request body accepted, in bytes [default: 8388608].
    #[arg(long)]
    pub(crate) max_body_bytes: Option<usize>,
    /// Longest wait for the app's response head, e.g. 30s [default: 30s].
    #[arg(long, value_parser = crate::config::request_timeout)]
    pub(crate) request_timeout: Option<std::time::Duration>,
    /// When the audit spool cannot take a record: fail-closed (refuse the
    /// request) or fail-open (forward, count and log the loss) [default:
    /// fail-closed].
    #[arg(long)]
    pub(crate) audit_full: Option<ward_proxy::AuditFull>,
    /// Cap on the audit spool's size on disk, in MiB [default: 1024].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) audit_spool_mib: Option<u64>,
    /// Worker threads [default: one per core].
    #[arg(long, env = "WARD_WORKERS", value_parser = crate::config::at_least_one)]
    pub(crate) workers: Option<usize>,
    /// Check the configuration, print the effective settings (secrets
    /// shown as "<set>") and exit without starting.
    #[arg(long)]
    pub(crate) check: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) conn: Connection,
    #[command(subcommand)]
    pub(crate) command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the whole log: recompute the tree from the entries, check
    /// every checkpoint's signature and their consistency, and compare every
    /// hash tile.
    ///
    /// With --from-dir, DIR is a mirrored C2SP tlog-tiles directory (tile/,
    /// checkpoint) and nothing is contacted. Otherwise the log is fetched
    /// from the server (into --mirror DIR if given, for later offline
    /// checks). Exit 2 on any mismatch, naming the first bad index.
    Verify {
        /// A mirrored log directory to verify offline.
        #[arg(long)]
        from_dir: Option<PathBuf>,
        /// With the server: keep the fetched log in DIR.
        #[arg(long, conflicts_with = "from_dir")]
        mirror: Option<PathBuf>,
        /// The log's signed-note verifier key (`name+hash+base64`). Required
        /// with --from-dir; with the server, pin it here (`ward audit
        /// checkpoint` prints it) instead of trusting the key the server
        /// announces.
        #[arg(long, env = "WARD_AUDIT_VKEY")]
        vkey: Option<String>,
        /// The log's origin line; default: read from the first checkpoint.
        #[arg(long)]
        origin: Option<String>,
        /// Checkpoint files to verify against (repeatable); default: the
        /// current one. Give older saved checkpoints too to prove the log
        /// only grew since.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
    },
    /// Show the log's latest signed checkpoint (size, root) after checking
    /// its signature, and the verifier key to pin.
    Checkpoint {
        /// Verifier key to check the signature with (default: the key the
        /// server announces — pin it once you have it).
        #[arg(long, env = "WARD_AUDIT_VKEY")]
        vkey: Option<String>,
        /// Also write the signed checkpoint to FILE (for a later
        /// `ward audit verify --checkpoint FILE` that proves the log only
        /// grew).
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// The newest decisions, oldest first.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u64,
        /// Keep printing new decisions as they are logged (Ctrl-C stops).
        #[arg(short, long)]
        follow: bool,
    },
    /// Search decisions by agent, time, decision and policy, or find one
    /// by its decision id.
    Query {
        /// Agent name, as caller or as target.
        #[arg(long)]
        agent: Option<String>,
        /// From this time: RFC 3339, or an age such as 15m, 2h, 1d.
        #[arg(long)]
        since: Option<String>,
        /// Until this time: RFC 3339, or an age such as 5m.
        #[arg(long)]
        until: Option<String>,
        /// Only this outcome.
        #[arg(long, value_parser = ["allow", "deny"])]
        decision: Option<String>,
        /// Only decisions this policy id determined.
        #[arg(long)]
        policy: Option<String>,
        /// The one decision with this id — the `ward-decision-id` header, a
        /// 403's `decision_id`, an AuthZEN answer's `context.id` — shown
        /// whole, with the command that proves it is in the log. Exit 1 when
        /// no such decision is logged (yet).
        #[arg(long, value_name = "ID")]
        decision_id: Option<String>,
        /// At most this many (max 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Prove that entry INDEX is in the log: fetch the signed checkpoint,
    /// the entry and its inclusion proof, and verify them here.
    Prove {
        /// Log index of the entry (shown by `tail` and `query`).
        index: u64,
        /// Verifier key (default: the server's announced key).
        #[arg(long, env = "WARD_AUDIT_VKEY")]
        vkey: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check every policy in DIR strictly against the schema.
    ///
    /// DIR holds `*.cedar` files and optionally `schema.cedarschema`
    /// extending Ward's schema. Every problem is reported at once as
    /// file:line:column. Exit 2 when the bundle is invalid.
    Validate {
        /// The bundle directory.
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run the bundle's test cases (DIR/tests/*.yaml); exit 2 on any failure.
    ///
    /// Each file has optional `entities` (Cedar entity JSON as YAML) and
    /// `cases`, each with principal, action, resource (`Type::"id"`), an
    /// optional context (merged over defaults), `expect: allow|deny` and an
    /// optional expected `reason`.
    Test {
        /// The bundle directory.
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Push DIR to the server: validated and tested again there, stored
    /// immutably under its content hash, signed and activated.
    Push {
        /// The bundle directory.
        dir: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// List stored policy versions, newest first.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one stored version's files.
    Show {
        /// Version (hash) from `ward policy list`.
        version: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Re-activate a stored version.
    Rollback {
        /// Version (hash) from `ward policy list`.
        version: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Compare two stored versions: changed policy files, and which test
    /// cases (of either version) decide differently.
    Diff {
        /// The older version.
        from: String,
        /// The newer version.
        to: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CertArgs {
    #[command(flatten)]
    pub(crate) conn: Connection,
    #[command(subcommand)]
    pub(crate) command: CertCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Revoke one certificate by serial (`ward svid inspect` shows it).
    Revoke {
        /// Serial number in hex; colons and case are ignored.
        serial: String,
        /// Why (kept with the revocation).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// List every revocation (agents and serials), oldest first.
    Revocations,
}

/// How the CLI reaches the server (shared by every client command).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connection {
    /// Client config written by `ward server init` (server address, bundle,
    /// admin SVID and key). Default: $XDG_CONFIG_HOME/ward/client.toml or
    /// ~/.config/ward/client.toml.
    #[arg(long, global = true, env = "WARD_CLIENT_CONFIG")]
    pub(crate) client_config: Option<PathBuf>,
    /// Server address (`host:port`), overriding the client config.
    #[arg(long, global = true, env = "WARD_SERVER")]
    pub(crate) server: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub(crate) output: Output,
}

#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    pub(crate) conn: Connection,
    #[command(subcommand)]
    pub(crate) command: AgentCommand,
}

/// Attributes policy can read about an agent.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct AttributeFlags {
    /// Owning team.
    #[arg(long)]
    pub(crate) team: Option<String>,
    /// Risk tier, e.g. low, medium, high.
    #[arg(long)]
    pub(crate) risk_tier: Option<String>,
    /// Highest data classification it may handle, e.g. internal.
    #[arg(long)]
    pub(crate) clearance: Option<String>,
    /// A label `key=value`; repeat for more.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
    /// Model metadata `key=value` (provider, name, version...); repeatable.
    #[arg(long = "model", value_name = "KEY=VALUE")]
    pub(crate) model: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Register a new agent (status active) and print it.
    Register {
        /// Agent name: lowercase letters, digits, `.`, `_`, `-`.
        name: String,
        #[command(flatten)]
        attributes: AttributeFlags,
    },
    /// List every agent.
    List,
    /// Show one agent.
    Show {
        /// Agent name.
        name: String,
    },
    /// Change an agent's attributes or endpoint; unset flags keep their value.
    Update {
        /// Agent name.
        name: String,
        #[command(flatten)]
        attributes: AttributeFlags,
        /// Remove a label by key; repeatable.
        #[arg(long = "remove-label", value_name = "KEY")]
        remove_labels: Vec<String>,
        /// Address of the agent's proxy inbound listener.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Retire an agent: final; its SVIDs are no longer renewed.
    Retire {
        /// Agent name.
        name: String,
    },
    /// Revoke an agent: every certificate it holds or will hold is refused
    /// everywhere, now; final.
    Revoke {
        /// Agent name.
        name: String,
        /// Why (kept with the revocation).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// Quarantine an agent: it keeps its identity but proxies confine it to
    /// what the quarantine policy allows.
    Quarantine {
        /// Agent name.
        name: String,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// End an agent's quarantine.
    Release {
        /// Agent name.
        name: String,
        #[command(flatten)]
        wait: WaitFlags,
    },
}

/// Waiting for receipts after a containment change.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WaitFlags {
    /// Return only once every connected proxy enforces the change (its
    /// receipt), listing any that do not within --timeout (exit 2) and the
    /// disconnected ones with the time their certificates expire anyway.
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits (e.g. 5s, 1m).
    #[arg(long, default_value = "5s", requires = "wait")]
    pub(crate) timeout: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub(crate) conn: Connection,
    #[command(subcommand)]
    pub(crate) command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a single-use join token for an agent (shown once).
    Create {
        /// The agent the token enrolls.
        #[arg(long)]
        agent: String,
        /// Lifetime, e.g. `10m` (at most 24h).
        #[arg(long, default_value = "10m")]
        ttl: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// Create a data directory: trust domain, CA, store, bundle, first admin.
    ///
    /// The first admin's SVID and key (0600) are written to DIR/admin/.
    Init {
        /// Data directory to create.
        #[arg(long, env = "WARD_DATA_DIR")]
        data_dir: PathBuf,
        /// Trust domain, e.g. `example.org`.
        #[arg(long, default_value = "ward.local")]
        trust_domain: String,
        /// Store URL; default is SQLite in the data directory.
        /// PostgreSQL: `postgres://user@host/db`.
        #[arg(long, env = "WARD_STORE")]
        store: Option<String>,
        /// Key algorithm for the CA: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Serve the control-plane API (TLS 1.3, SPIFFE client certificates).
    ///
    /// Settings come from defaults, then --config, then WARD_* variables,
    /// then flags. Stops cleanly on SIGINT or SIGTERM, letting in-flight
    /// requests finish.
    Run {
        /// TOML config file (a `[server]` table; see README.md).
        #[arg(long, env = "WARD_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory made by `ward server init`.
        #[arg(long, env = "WARD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Store URL; must be the one given to `init`.
        #[arg(long, env = "WARD_STORE")]
        store: Option<String>,
        /// Address to listen on [default: 127.0.0.1:8443].
        #[arg(long, env = "WARD_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Lifetime of agent SVIDs, e.g. `15m` (1m to 24h) [default: 15m].
        #[arg(long, env = "WARD_SVID_TTL")]
        svid_ttl: Option<String>,
        /// Policy bundle directory loaded beside Ward's admin policy
        /// (checked with `ward policy validate`); decides AuthZEN requests.
        #[arg(long, env = "WARD_POLICY_DIR")]
        policy_dir: Option<PathBuf>,
        /// Check the configuration, print the effective settings and exit.
        #[arg(long)]
        check: bool,
        /// Output format (for --check).
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show the server's status: version, store, revision, agents, CA expiry.
    Status {
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create a root and an online intermediate CA for a trust domain
    /// (offline, for `ward svid mint`; `ward server init` makes its own).
    ///
    /// Writes root/intermediate certificates, their keys (mode 0600) and the
    /// trust bundle (SPIFFE bundle JSON) into DIR, which must not already
    /// hold a CA.
    Init {
        /// Directory to create the CA in.
        #[arg(long)]
        dir: PathBuf,
        /// Trust domain, e.g. `example.org`.
        #[arg(long, default_value = "ward.local")]
        trust_domain: String,
        /// Key algorithm for root and intermediate: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show the server's CA authorities: which one issues, which roots the
    /// trust bundle carries, and how many valid certificates each signed.
    Status {
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate the CA with no failed request: stage a new intermediate (and
    /// with --root a new root), wait until every connected proxy trusts it,
    /// then activate it. Proxies re-enroll at once; the old authority stays
    /// trusted until you retire it (`ward ca retire`).
    Rotate {
        /// Also generate a new root (otherwise a new intermediate under the
        /// active root, whose key must be in the server's CA directory).
        #[arg(long)]
        root: bool,
        /// Stage only; activate later with `ward ca activate ID`.
        #[arg(long)]
        no_activate: bool,
        /// How long to wait for proxies to trust the new authority before
        /// giving up without activating it (e.g. 30s, 2m).
        #[arg(long, default_value = "30s")]
        timeout: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Make a staged authority issue (or roll back to a retiring one).
    Activate {
        /// Authority id (`ward ca status`).
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Take an authority's root out of the trust bundle. Refused while
    /// certificates it signed are still valid, unless --force.
    Retire {
        /// Authority id (`ward ca status`).
        id: String,
        /// Retire now even though certificates it signed are still valid
        /// (holders that have not re-enrolled lose trust where its root
        /// leaves the bundle).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SvidCommand {
    /// Generate a key and an X.509-SVID signed by a local CA directory.
    ///
    /// For development and tests: in a deployment, proxies enroll with the
    /// server instead and the key never leaves them.
    Mint {
        /// CA directory made by `ward ca init`.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Agent name; the SVID is for `spiffe://<trust-domain>/agent/<name>`.
        #[arg(
            long,
            conflicts_with = "spiffe_id",
            required_unless_present = "spiffe_id"
        )]
        agent: Option<String>,
        /// Full SPIFFE ID instead of an agent name.
        #[arg(long)]
        spiffe_id: Option<String>,
        /// Lifetime, e.g. `15m`, `1h` (capped by the CA at 24h).
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// Directory to write `svid.pem` and `svid.key.pem` (0600) into.
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show what an X.509-SVID says and, with --bundle, verify it.
    ///
    /// Exit code 2 when the certificate is not a valid SVID or does not verify.
    Inspect {
        /// PEM file with the SVID chain, leaf first.
        file: PathBuf,
        /// SPIFFE bundle JSON to verify the chain against.
        #[arg(long, requires = "trust_domain")]
        bundle: Option<PathBuf>,
        /// Trust domain the bundle belongs to.
        #[arg(long)]
        trust_domain: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}
