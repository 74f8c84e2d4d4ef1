//! A Dataverse Web API emulator on loopback.
//!
//! [`Emulator::start`] seeds deterministic tables, binds `127.0.0.1`, and serves the Web API
//! (`/api/data/v9.2/...`), an Entra ID-shaped token endpoint and fault injection from its own
//! thread and tokio runtime, so synchronous callers (tests, a wasmtime host) can use it.
//!
//! Rehearsing faults: fault injection ([`Emulator::faults`], [`FaultRule`]), the
//! service-protection limit ([`Emulator::set_rate_limit`], [`RateLimit`]) and the request log
//! ([`Emulator::requests`]) are also served over HTTP by the admin API under `/_admin/` on the
//! same port, guarded by a random key ([`Emulator::admin_key`]); the `dataverse-emulator` binary
//! and `dynamics emulator` take `--fault RULE` and `--rate-limit N/WINDOW` and print the key. The
//! `admin` module lists the endpoints and the guard, `faults` the rule grammar.
//!
//! Honest refusals: a Dataverse message the emulator does not implement (a bound or unbound
//! action or function such as `Merge` or `RetrieveTimestamp`), a type-cast
//! segment, `?sql=`, or a documented metadata property it does not render answers 501 with a
//! Dataverse-shaped error naming it (`messages`, `metadata::types`), never a plausible wrong
//! answer; unknown names keep Dataverse's documented 404 and 400.
//!
//! # Layout
//!
//! Requests flow down: the front calls the dispatcher, the dispatcher the handlers, the
//! handlers what lies below them. The dispatcher only dispatches; no handler imports it, and
//! nothing below the handlers imports a handler (the `layout` tests check both):
//!
//! - `server`: the HTTP front (axum as a byte pipe): request log, fault injection (`faults`),
//!   the admin API (`admin`), bearer tokens, service protection (`throttle`; and `cost`, the
//!   latency, `x-ms-dop-hint` and per-user limits of [`Config::cost_model`]), impersonation,
//!   then `routes`; or the Entra ID side (`entra`, `auth`, `keys` for the signing key, `tls`).
//! - `routes`: the one dispatcher of the Web API, called by `server` and by `batch` for the
//!   requests inside a `$batch`.
//! - Handlers: `read` (collections with paging and counts, one row and the paths below it, the
//!   service document, `WhoAmI`), `writes` (create, update, upsert, delete, `$ref`), `delta`
//!   (change tracking), `fetchxml` (by stage: `parse`, `plan`, `execute`, `render`),
//!   `metadata` (`json`, `read`, `write`, `types`, and the definitions it creates:
//!   `define_table`, `relationships`, `option_sets`), `csdl` (`$metadata`), `messages` (Dataverse
//!   messages and custom APIs by name: `params`, `sales`, `info`, `access`, `jobs`,
//!   `custom_api`, `set_state`; the 501s for messages not emulated), `async_ops` (background
//!   operations, their runner thread and status monitor), `switches` (the data-load headers of
//!   writes), `flows` (callback
//!   registrations), `bulk_messages` (CreateMultiple, UpdateMultiple, UpsertMultiple,
//!   DeleteMultiple, each target through `writes`), `batch` (`$batch` and its change sets),
//!   `files` (file and image columns, their messages, notes' files: `images`, `messages`,
//!   `notes`) and `search` (Dataverse search 2.0).
//! - Shared by the handlers: `wire` (a leaf: `Req`, `Resp`, `Limits`, `Caller`, `Prefer`),
//!   `row_key` (which row a key in the URL names), `odata` (paths, query options and the one
//!   `$filter` evaluator, over rows and metadata records alike), `render` (rows as JSON),
//!   `paging` (skiptokens and paging cookies), `impersonation`, `webhooks`, and `error` (every
//!   Dataverse error code, each once, as a constant).
//! - Data: `schema` (tables, addressed by typed `TableId`s, and relationships), `catalog` (the
//!   tables served), `store` (rows, row versions, the change log), `blobs` (file
//!   data kept outside the rows), `seed`, `guid`, `datetime`.
//! - Finance and Operations: `fno` serves a small F&O OData service on a port of its own
//!   ([`Emulator::fno_url`], OData root `<that>/data`): data entities with company-scoped keys,
//!   `cross-company`, queries, `$batch`, `$metadata`, F&O's errors, and tokens whose audience is
//!   the F&O environment. It shares only the front (request log, faults, request limit) and the
//!   token service with the Dataverse side.
//!
//! # Independent of `crates/dataverse`, on purpose
//!
//! The emulator is the judge of every test of the connector, so it shares no code with
//! `crates/dataverse`, the connector's own knowledge of Dataverse. It has its own GUIDs, batch
//! parser, FetchXML reader, error codes and paging cookies, written from Microsoft's
//! documentation rather than from the connector's reading of it: shared code would share
//! misunderstandings, and a test would then pass against an emulator that is wrong in the same
//! way as the connector. Keep it so: do not make this crate depend on `dataverse`, and do not
//! "deduplicate" the two (the `layout` tests check the manifest and the sources).

mod admin;
mod assertions;
pub use assertions::TestCertificate;
mod async_ops;
mod auth;
mod batch;
mod blobs;
mod bulk_messages;
mod cascade;
mod catalog;
mod cost;
mod csdl;
mod datetime;
mod delta;
mod elastic;
mod entra;
mod error;
mod faults;
mod fetchxml;
mod files;
mod flows;
mod fno;
mod guid;
mod impersonation;
mod keys;
#[cfg(test)]
mod layout;
mod managed_identity;
mod many_to_many;
mod messages;
mod metadata;
mod odata;
mod paging;
mod read;
mod render;
mod routes;
mod row_key;
mod schema;
mod search;
mod seed;
mod server;
mod store;
mod switches;
mod throttle;
mod tls;
mod webhooks;
mod wire;
mod writes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use std::future::IntoFuture;

use anyhow::{Context, anyhow};

pub use auth::{AppConfig, UserConfig};
pub use cost::{CostModel, Throttled};
pub use error::DvError;
pub use faults::{Fault, FaultHandle, FaultRule};
pub use guid::Guid;
pub use store::ChangeKind;
pub use throttle::RateLimit;
pub use webhooks::WebhookDelivery;

/// The `OrganizationName` of webhook contexts.
pub const ORGANIZATION_NAME: &str = "emulator";

/// The default tenant id of the emulator's directory.
pub const TENANT_ID: &str = "4d9a7e2c-3f1b-4c6e-9a8d-2b7f0e5c1a90";
/// The default confidential app (client credentials).
pub const CLIENT_ID: &str = "7c2e1f4a-9b3d-4e8f-a6c1-5d0b2e9f3a71";
/// The secret of [`CLIENT_ID`]: a fixed value that only this emulator accepts.
pub const CLIENT_SECRET: &str = "dataverse-emulator-demo-secret";
/// A public client (password and authorization-code grants without a secret).
pub const PUBLIC_CLIENT_ID: &str = "3e8b5d2f-6a1c-4f9e-b7d0-8c4a2e1f6b53";
/// An app nobody consented to: every grant fails with AADSTS65001.
pub const UNCONSENTED_CLIENT_ID: &str = "9f4c7a1e-2d6b-4e3a-8f5c-1b9d7e0a4c26";
/// The password of the seeded users.
pub const USER_PASSWORD: &str = "emulator-demo-password";

/// How the emulator is seeded and behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Rows seeded per business table (reference tables stay small). Default 50.
    pub rows_per_table: usize,
    /// Per-table overrides of the row count, by logical or entity set name.
    pub table_rows: Vec<(String, usize)>,
    /// Answer 401 without a valid bearer token. Default true.
    pub require_auth: bool,
    /// Largest page served; `Prefer: odata.maxpagesize` is capped to it. Default 5000.
    pub max_page_size: usize,
    /// `$count` and `/$count` stop counting here, as the service does. Default 5000.
    pub count_limit: usize,
    /// Service protection: requests per caller per window; None disables it (default).
    pub rate_limit: Option<RateLimit>,
    /// The cost model: per-request latency, per-record server time, `x-ms-dop-hint` and the
    /// three service-protection limits per user (requests, execution time, concurrency).
    /// None (the default): answers come as fast as they can and only `rate_limit` applies.
    pub cost_model: Option<CostModel>,
    /// Access token lifetime. Default 3599 s.
    pub token_lifetime: Duration,
    pub tenant_id: String,
    /// The directory name used in AADSTS messages.
    pub tenant_name: String,
    pub apps: Vec<AppConfig>,
    pub users: Vec<UserConfig>,
    /// Keep every request for [`Emulator::requests`]. Default true.
    pub record_requests: bool,
    /// The `x-ms-dop-hint` every Web API answer carries when the cost model is off (the cost
    /// model answers its own). Dataverse sends it with its answers ("the `x-ms-dop-hint`
    /// response header value provides recommended degree of parallelism, which varies from
    /// environment to environment", Send parallel requests,
    /// learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests), and
    /// clients read it from the first answer they get, WhoAmI in Microsoft's WebAPIService
    /// sample. Default 4, a small environment on one web server.
    pub dop_hint: usize,
    /// Answer an upsert by alternate key with `OData-EntityId: set(<guid>)` instead of the
    /// documented key form `set(key='v')`. Default false (the documented form).
    pub alt_key_entity_id_as_guid: bool,
    /// Serve HTTPS with a certificate for 127.0.0.1 and localhost, issued by a CA generated at
    /// start ([`Emulator::ca_certificate_path`]); every absolute URL then says `https://`.
    /// Default false (plain HTTP).
    pub tls: bool,
    /// Where `tls` writes the CA certificate (PEM). None (the default): a new file in the
    /// temporary directory, removed when the emulator stops.
    pub ca_certificate_file: Option<PathBuf>,
    /// How long a change-tracking delta token stays valid after it was issued; following an
    /// older `@odata.deltaLink` answers the ExpiredVersionStamp error. Default 7 days, as
    /// Dataverse (Organization.ExpireChangeTrackingInDays); shorten it to rehearse an expiry.
    pub delta_token_lifetime: Duration,
    /// How long a background operation (a custom API called with `Prefer: respond-async`)
    /// waits as Ready / Waiting For Resources before the emulator runs it; lengthen it to see
    /// the waiting state or cancel the operation. Default 0 (run as soon as the runner looks,
    /// within some milliseconds).
    pub background_operation_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rows_per_table: 50,
            table_rows: Vec::new(),
            require_auth: true,
            max_page_size: 5000,
            count_limit: 5000,
            rate_limit: None,
            cost_model: None,
            token_lifetime: Duration::from_secs(3599),
            tenant_id: TENANT_ID.into(),
            tenant_name: "emulator.onmicrosoft.com".into(),
            apps: vec![
                AppConfig {
                    client_id: CLIENT_ID.into(),
                    client_secret: Some(CLIENT_SECRET.into()),
                    display_name: "Dataverse Emulator Demo".into(),
                    consented: true,
                    redirect_uris: Vec::new(),
                },
                AppConfig {
                    client_id: PUBLIC_CLIENT_ID.into(),
                    client_secret: None,
                    display_name: "Dataverse Emulator Public Client".into(),
                    consented: true,
                    redirect_uris: Vec::new(),
                },
                AppConfig {
                    client_id: UNCONSENTED_CLIENT_ID.into(),
                    client_secret: Some("unconsented-demo-secret".into()),
                    display_name: "Unconsented App".into(),
                    consented: false,
                    redirect_uris: Vec::new(),
                },
            ],
            users: vec![
                UserConfig {
                    username: seed::ADMIN_USERNAME.into(),
                    password: USER_PASSWORD.into(),
                    mfa_required: false,
                },
                UserConfig {
                    username: seed::MFA_USERNAME.into(),
                    password: USER_PASSWORD.into(),
                    mfa_required: true,
                },
                // A user without the delegate privilege (see [`Emulator::seeded_users`]).
                UserConfig {
                    username: seed::SALES_USERNAME.into(),
                    password: USER_PASSWORD.into(),
                    mfa_required: false,
                },
            ],
            record_requests: true,
            dop_hint: 4,
            alt_key_entity_id_as_guid: false,
            tls: false,
            ca_certificate_file: None,
            delta_token_lifetime: Duration::from_secs(7 * 86_400),
            background_operation_delay: Duration::ZERO,
        }
    }
}

/// What a client needs to connect.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub public_client_id: String,
    pub unconsented_client_id: String,
    /// The interactive user (password / authorization-code grants).
    pub username: String,
    pub password: String,
    /// A user the password grant refuses with AADSTS50076 (MFA required).
    pub mfa_username: String,
    /// systemuserid of [`Credentials::mfa_username`].
    pub mfa_user_id: String,
    /// systemuserid of [`Credentials::username`].
    pub user_id: String,
    /// systemuserid behind client-credentials tokens.
    pub application_user_id: String,
    pub business_unit_id: String,
    pub organization_id: String,
}

/// A seeded systemuser, as the Web API stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeededUser {
    pub system_user_id: String,
    /// `azureactivedirectoryobjectid`: what `CallerObjectId` names.
    pub object_id: String,
    /// `domainname`.
    pub username: String,
    pub full_name: String,
    pub business_unit_id: String,
    /// `isdisabled`.
    pub disabled: bool,
    /// Holds `prvActOnBehalfOfAnotherUser`: may send `MSCRMCallerID` / `CallerObjectId`.
    pub can_impersonate: bool,
}

/// The users the emulator seeds with fixed roles, for impersonation and sign-in tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SeededUsers {
    /// The interactive System Administrator ([`Credentials::username`]); may impersonate.
    pub admin: SeededUser,
    /// The application user behind client-credentials tokens; may impersonate (the Delegate
    /// role, as server-to-server apps acting for users need).
    pub application_user: SeededUser,
    /// A second application user, without the delegate privilege. Its app registration is not
    /// served by the token endpoint: tests act as it with [`Emulator::issue_token_for`].
    pub restricted_application_user: SeededUser,
    /// A salesperson in the second business unit, without the delegate privilege; signs in
    /// with the password grant ([`USER_PASSWORD`]).
    pub sales_user: SeededUser,
    /// A disabled user.
    pub disabled_user: SeededUser,
    /// The user the password grant refuses with AADSTS50076.
    pub mfa_user: SeededUser,
}

/// One write, as recorded in the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub version: u64,
    pub entity_set: String,
    pub id: String,
    pub kind: ChangeKind,
}

/// A file stored in a file column ([`Emulator::file`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    /// The file name (`x-ms-file-name`, `FileName`).
    pub name: String,
    pub mime_type: String,
    pub bytes: Vec<u8>,
}

/// The recorded requests, newest last, bounded: an emulator left running for days behind an
/// integration keeps the latest [`RequestLog::MAX_REQUESTS`] requests and at most
/// [`RequestLog::MAX_BODY_BYTES`] of their bodies, dropping the oldest first, instead of
/// growing until the machine runs out of memory. `--no-record` keeps none.
#[derive(Debug)]
pub struct RequestLog {
    entries: std::collections::VecDeque<RecordedRequest>,
    body_bytes: usize,
    dropped: u64,
    max_requests: usize,
    max_body_bytes: usize,
}

impl Default for RequestLog {
    fn default() -> RequestLog {
        RequestLog::with_bounds(RequestLog::MAX_REQUESTS, RequestLog::MAX_BODY_BYTES)
    }
}

impl RequestLog {
    pub const MAX_REQUESTS: usize = 200_000;
    pub const MAX_BODY_BYTES: usize = 512 << 20;

    /// A log with other bounds than the defaults (tests).
    pub fn with_bounds(max_requests: usize, max_body_bytes: usize) -> RequestLog {
        RequestLog {
            entries: std::collections::VecDeque::new(),
            body_bytes: 0,
            dropped: 0,
            max_requests: max_requests.max(1),
            max_body_bytes,
        }
    }

    pub fn push(&mut self, request: RecordedRequest) {
        self.body_bytes += request.body.len();
        self.entries.push_back(request);
        while self.entries.len() > self.max_requests
            || (self.body_bytes > self.max_body_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.body_bytes -= old.body.len();
                self.dropped += 1;
            }
        }
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &RecordedRequest> {
        self.entries.iter()
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut RecordedRequest> {
        self.entries.iter_mut()
    }

    pub fn to_vec(&self) -> Vec<RecordedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every entry; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.body_bytes = 0;
        n
    }

    /// How many of the oldest requests were dropped to keep within the bounds.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Its place in the log, from 1 (the admin API's `?since=`).
    pub seq: u64,
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered (None while the answer is being made).
    pub status: Option<u16>,
    /// The injected fault the request met (`throttle`, `cut`, …; see [`Fault::kind`]).
    pub fault: Option<String>,
}

impl RecordedRequest {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running emulator. Stops on [`Emulator::stop`] or drop.
pub struct Emulator {
    app: Arc<server::App>,
    /// The CA certificate (PEM) and the file it was written to, when served over TLS; the
    /// flag says whether the file is ours to remove.
    ca: Option<(String, PathBuf, bool)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Seeds the tables, binds `127.0.0.1:port` (0 = any free port) and serves on a thread of
    /// its own with its own tokio runtime.
    pub fn start(config: Config, port: u16) -> anyhow::Result<Emulator> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        let addr: SocketAddr = listener.local_addr().context("reading the bound address")?;
        // The Finance and Operations OData service answers on a port of its own (fno.rs), plain
        // HTTP only: with TLS it is not served.
        let fno_listener = match config.tls {
            false => {
                let l = std::net::TcpListener::bind(("127.0.0.1", 0))
                    .context("binding the F&O port")?;
                l.set_nonblocking(true)
                    .context("making the F&O listener non-blocking")?;
                Some(l)
            }
            true => None,
        };
        let fno_addr = match &fno_listener {
            Some(l) => Some(l.local_addr().context("reading the F&O address")?),
            None => None,
        };
        keys::warm_up();
        assertions::warm_up();
        let tls = match config.tls {
            true => Some(tls::generate()?),
            false => None,
        };
        let ca = match &tls {
            Some(t) => Some(write_ca(
                &t.ca_pem,
                config.ca_certificate_file.as_deref(),
                addr,
            )?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };

        let schema = Arc::new(catalog::schema());
        let mut store = store::Store::new(schema);
        store.delta_token_lifetime =
            i64::try_from(config.delta_token_lifetime.as_secs()).unwrap_or(i64::MAX);
        let main_client = config
            .apps
            .first()
            .map(|a| a.client_id.clone())
            .unwrap_or_default();
        let ids = seed::seed(
            &mut store,
            config.rows_per_table,
            &config.table_rows,
            &main_client,
        );
        webhooks::seed(&mut store);
        messages::custom_api::seed(&mut store);
        bulk_messages::seed(&mut store);
        let users = resolve_users(&store, &config.users, &ids);
        let profiles = profiles(&store, &users, ids.application_user);
        let mut auth = auth::Auth::new(
            config.tenant_id.clone(),
            config.tenant_name.clone(),
            config.apps.clone(),
            users,
            ids.application_user,
            config.token_lifetime,
        );
        auth.origin = format!("{scheme}://{addr}");
        for credential in &mut auth.assertions.federated {
            credential.issuer = assertions::test_issuer(&auth.origin);
        }
        for (user, name, object_id) in profiles {
            auth.set_profile(user, name, object_id);
        }
        let config_rows_fno = config.rows_per_table.clamp(1, 50);
        let app = Arc::new(server::App {
            rate_limit: Mutex::new(config.rate_limit),
            cost: cost::Cost::new(config.cost_model),
            config,
            store: RwLock::new(store),
            auth: Mutex::new(auth),
            throttle: Mutex::new(throttle::Throttle::default()),
            faults: FaultHandle::default(),
            requests: Mutex::new(RequestLog::default()),
            request_seq: std::sync::atomic::AtomicU64::new(0),
            admin_key: admin::random_key(),
            ids,
            addr,
            scheme,
            webhooks: webhooks::Dispatcher::new(),
            fno: Mutex::new(fno::Service::new(config_rows_fno)),
            fno_addr,
        });
        async_ops::spawn(Arc::downgrade(&app), app.config.background_operation_delay);

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let served = app.clone();
        let thread = std::thread::Builder::new()
            .name(format!("dataverse-emulator-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("dataverse-emulator-worker")
                    // Filters are evaluated recursively: a `$filter` of a few hundred `or`
                    // terms (as clients write to read many keys at once, which Dataverse takes)
                    // is a deep tree, too deep for the default 2 MiB in a debug build.
                    .thread_stack_size(32 * 1024 * 1024)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("starting the runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("adopting the listener: {e}")));
                            return;
                        }
                    };
                    let stopping = Arc::new(tokio::sync::Notify::new());
                    let signal = stopping.clone();
                    let shutdown = async move {
                        let _ = rx.await;
                        signal.notify_one();
                    };
                    if let Some(l) = fno_listener
                        && let Ok(l) = tokio::net::TcpListener::from_std(l)
                    {
                        let fno = server::router(served.clone());
                        tokio::spawn(axum::serve(l, fno).into_future());
                    }
                    let router = server::router(served);
                    let server: std::pin::Pin<
                        Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>,
                    > = match tls {
                        None => Box::pin(
                            axum::serve(listener, router)
                                .with_graceful_shutdown(shutdown)
                                .into_future(),
                        ),
                        Some(tls) => match tls::TlsListener::new(listener, tls.acceptor) {
                            Ok(listener) => Box::pin(
                                axum::serve(listener, router)
                                    .with_graceful_shutdown(shutdown)
                                    .into_future(),
                            ),
                            Err(e) => {
                                let _ = ready_tx.send(Err(format!("serving TLS: {e}")));
                                return;
                            }
                        },
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = server => {}
                        _ = async {
                            stopping.notified().await;
                            tokio::time::sleep(server::SHUTDOWN_GRACE).await;
                        } => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(500));
            })
            .context("spawning the emulator thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(anyhow!("emulator failed to start: {e}")),
            Err(_) => return Err(anyhow!("emulator thread exited during start-up")),
        }
        Ok(Emulator {
            app,
            ca,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` with [`Config::tls`].
    pub fn base_url(&self) -> String {
        self.app.base_url()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.app.scheme
    }

    /// The CA certificate (PEM) that issued the server certificate, with [`Config::tls`]:
    /// what a client adds to its trusted roots.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|(pem, _, _)| pem.as_str())
    }

    /// The file holding [`Emulator::ca_certificate_pem`] (for `NODE_EXTRA_CA_CERTS`,
    /// `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` and the like), with [`Config::tls`].
    pub fn ca_certificate_path(&self) -> Option<&Path> {
        self.ca.as_ref().map(|(_, path, _)| path.as_path())
    }

    /// The tenant's OpenID configuration (v2.0) URL, the authority MSAL and Azure Identity
    /// take being `{base url}/{tenant}`.
    pub fn openid_configuration_url(&self) -> String {
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.base_url(),
            self.app.config.tenant_id
        )
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.app.addr.port()
    }

    /// `http://127.0.0.1:PORT/api/data/v9.2`
    pub fn web_api_url(&self) -> String {
        format!("{}/api/data/v9.2", self.base_url())
    }

    /// `http://127.0.0.1:PORT/<tenant>/oauth2/v2.0/token`
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url(),
            self.app.config.tenant_id
        )
    }

    /// `http://127.0.0.1:PORT/<tenant>/oauth2/v2.0/authorize`
    pub fn authorize_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/authorize",
            self.base_url(),
            self.app.config.tenant_id
        )
    }

    /// The scope a client-credentials request must name: `<base url>/.default`.
    pub fn default_scope(&self) -> String {
        format!("{}/.default", self.base_url())
    }

    /// Tenant, apps, users and ids a client needs.
    pub fn credentials(&self) -> Credentials {
        let c = &self.app.config;
        let ids = &self.app.ids;
        let secret = c
            .apps
            .first()
            .and_then(|a| a.client_secret.clone())
            .unwrap_or_default();
        Credentials {
            tenant_id: c.tenant_id.clone(),
            client_id: c
                .apps
                .first()
                .map(|a| a.client_id.clone())
                .unwrap_or_default(),
            client_secret: secret,
            public_client_id: PUBLIC_CLIENT_ID.into(),
            unconsented_client_id: UNCONSENTED_CLIENT_ID.into(),
            username: c
                .users
                .first()
                .map(|u| u.username.clone())
                .unwrap_or_default(),
            password: c
                .users
                .first()
                .map(|u| u.password.clone())
                .unwrap_or_default(),
            mfa_username: seed::MFA_USERNAME.into(),
            mfa_user_id: ids.mfa_user.to_string(),
            user_id: ids.admin_user.to_string(),
            application_user_id: ids.application_user.to_string(),
            business_unit_id: ids.root_business_unit.to_string(),
            organization_id: ids.organization_id.to_string(),
        }
    }

    /// The certificate registered to the confidential app (`credentials().client_id`), with its
    /// private key as PEM and PFX, for certificate sign-in (client assertions).
    pub fn certificate(&self) -> &'static TestCertificate {
        assertions::registered()
    }

    /// A certificate registered to no app: an assertion signed with it gets AADSTS700027.
    pub fn unregistered_certificate(&self) -> &'static TestCertificate {
        assertions::unregistered()
    }

    /// Moves the token service's clock by `secs` when it checks client assertions' `nbf` and
    /// `exp`, so a test can make a fresh assertion look expired (or not yet valid).
    pub fn shift_assertion_clock(&self, secs: i64) {
        if let Ok(mut auth) = self.app.auth.lock() {
            auth.assertions.clock_offset_secs = secs;
        }
    }

    /// A token of the emulator's test issuer about `subject`, for the federated identity
    /// credential of the confidential app (subject [`Emulator::federated_subject`], audience
    /// `api://AzureADTokenExchange`): what a workload would find in its token file. A negative
    /// `lifetime_secs` makes one that has already expired.
    pub fn federated_token(&self, subject: &str, audience: &str, lifetime_secs: i64) -> String {
        assertions::federated_token(&self.base_url(), subject, audience, lifetime_secs)
    }

    /// The subject the confidential app's federated identity credential trusts.
    pub fn federated_subject(&self) -> &'static str {
        assertions::FEDERATED_SUBJECT
    }

    /// Every request received so far, in order (the latest [`RequestLog::MAX_REQUESTS`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app
            .requests
            .lock()
            .map(|r| r.to_vec())
            .unwrap_or_default()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        if let Ok(mut r) = self.app.requests.lock() {
            r.clear();
        }
    }

    /// The key the admin API (`/_admin/`) asks for, as `X-Emulator-Admin-Key` or a bearer token:
    /// random per start.
    pub fn admin_key(&self) -> &str {
        &self.app.admin_key
    }

    /// `http://127.0.0.1:PORT/_admin` (the admin API's root).
    pub fn admin_url(&self) -> String {
        format!("{}{}", self.base_url(), admin::PREFIX)
    }

    /// Switches fault injection.
    pub fn faults(&self) -> FaultHandle {
        self.app.faults.clone()
    }

    /// Changes the service-protection limit while running (None disables it).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        if let Ok(mut l) = self.app.rate_limit.lock() {
            *l = limit;
        }
    }

    /// Changes the cost model while running (None switches it off).
    pub fn set_cost_model(&self, model: Option<CostModel>) {
        self.app.cost.set_model(model);
    }

    /// The cost model in force.
    pub fn cost_model(&self) -> Option<CostModel> {
        self.app.cost.model()
    }

    /// How many requests the cost model's limits refused since the start, by limit.
    pub fn throttled(&self) -> Throttled {
        self.app.cost.throttled()
    }

    /// The Finance and Operations environment URL, `http://127.0.0.1:PORT` (its OData root is
    /// `<that>/data`); None with TLS, where F&O is not served.
    pub fn fno_url(&self) -> Option<String> {
        self.app
            .fno_addr
            .map(|a| format!("{}://{a}", self.app.scheme))
    }

    /// A snapshot of an F&O entity's rows in every company, ordered by key.
    pub fn fno_table(&self, entity_set: &str) -> Vec<serde_json::Value> {
        self.app
            .fno
            .lock()
            .map(|s| s.table(entity_set))
            .unwrap_or_default()
    }

    /// Sets the F&O page size (the documented 10,000 by default), so tests page small sets.
    pub fn set_fno_page_size(&self, size: usize) {
        if let Ok(mut s) = self.app.fno.lock() {
            s.page_size = size.clamp(1, fno::MAX_PAGE);
        }
    }

    /// An access token for the application user whose audience is the F&O environment.
    pub fn issue_fno_token_for_tests(&self) -> String {
        let aud = self.fno_url().unwrap_or_default();
        self.app
            .auth
            .lock()
            .map(|mut a| a.issue_for_audience(self.app.ids.application_user, &aud))
            .unwrap_or_default()
    }

    /// A snapshot of a table's rows (all columns, wire names, with `@odata.etag`), ordered by
    /// primary key. Unknown tables give an empty list.
    pub fn table(&self, entity_set_or_logical_name: &str) -> Vec<serde_json::Value> {
        let Ok(store) = self.app.store.read() else {
            return Vec::new();
        };
        admin::table_rows(&store, entity_set_or_logical_name).unwrap_or_default()
    }

    /// The file a row's file column holds (`entity set or logical name`, row id, column):
    /// its name, MIME type and bytes, as uploaded through the Web API or the file messages.
    /// None when the row, the column or the file does not exist.
    pub fn file(
        &self,
        entity_set_or_logical_name: &str,
        id: &str,
        column: &str,
    ) -> Option<StoredFile> {
        let store = self.app.store.read().ok()?;
        let (name, mime_type, bytes) =
            files::file_of(&store, entity_set_or_logical_name, id, column)?;
        Some(StoredFile {
            name,
            mime_type,
            bytes,
        })
    }

    /// An access token for the application user, without the token dance.
    pub fn issue_token_for_tests(&self) -> String {
        self.app
            .auth
            .lock()
            .map(|mut a| a.issue(self.app.ids.application_user))
            .unwrap_or_default()
    }

    /// An access token for any systemuser (`system_user_id`), without the token dance: how
    /// tests act as a user the token endpoint does not serve, such as
    /// [`SeededUsers::restricted_application_user`]. An unknown id gives a token for that id.
    pub fn issue_token_for(&self, system_user_id: &str) -> String {
        let user = Guid::parse(system_user_id).unwrap_or_default();
        self.app
            .auth
            .lock()
            .map(|mut a| a.issue(user))
            .unwrap_or_default()
    }

    /// The seeded users with fixed roles, read from the systemuser table.
    pub fn seeded_users(&self) -> SeededUsers {
        let ids = &self.app.ids;
        let store = self.app.store.read().unwrap_or_else(|p| p.into_inner());
        let user = |id: Guid| {
            let su = store.schema.entity("systemuser");
            let row = su.and_then(|su| store.get(su, &id));
            let text = |col: &str| -> String {
                su.and_then(|su| store.entity(su).attr(col))
                    .and_then(|c| match &row?.vals[c] {
                        store::Val::Str(s) => Some(s.to_string()),
                        store::Val::Ref(g, _) => Some(g.to_string()),
                        _ => None,
                    })
                    .unwrap_or_default()
            };
            let disabled = su
                .and_then(|su| store.entity(su).attr("isdisabled"))
                .and_then(|c| row.map(|r| r.vals[c] == store::Val::Bool(true)))
                .unwrap_or(false);
            SeededUser {
                system_user_id: id.to_string(),
                object_id: text("azureactivedirectoryobjectid"),
                username: text("domainname"),
                full_name: text("fullname"),
                business_unit_id: text("businessunitid"),
                disabled,
                can_impersonate: ids.delegates.contains(&id),
            }
        };
        SeededUsers {
            admin: user(ids.admin_user),
            application_user: user(ids.application_user),
            restricted_application_user: user(ids.restricted_application_user),
            sales_user: user(ids.sales_user),
            disabled_user: user(ids.disabled_user),
            mfa_user: user(ids.mfa_user),
        }
    }

    /// Makes every access token issued so far expire now.
    pub fn expire_tokens(&self) {
        if let Ok(mut a) = self.app.auth.lock() {
            a.expire_all();
        }
    }

    /// Revokes every refresh token issued so far.
    pub fn revoke_refresh_tokens(&self) {
        if let Ok(mut a) = self.app.auth.lock() {
            a.revoke_refresh_tokens();
        }
    }

    /// Makes the password grant tell `username` to enroll in MFA first (AADSTS50079).
    pub fn require_mfa_registration(&self, username: &str) {
        if let Ok(mut a) = self.app.auth.lock() {
            a.require_mfa_registration(username);
        }
    }

    /// Writes since the row version `after` (0 for all), oldest first: the log that change
    /// tracking and webhooks build on.
    pub fn changes_since(&self, after: u64) -> Vec<ChangeRecord> {
        let Ok(store) = self.app.store.read() else {
            return Vec::new();
        };
        store
            .changes
            .iter()
            .filter(|c| c.version > after)
            .map(|c| ChangeRecord {
                version: c.version,
                entity_set: store.entity(c.entity).entity_set_name.clone(),
                id: c.id.to_string(),
                kind: c.kind,
            })
            .collect()
    }

    /// Makes every change-tracking delta token issued so far expire: following an older
    /// `@odata.deltaLink` then answers the expired-token error and the client must resync.
    pub fn expire_delta_tokens(&self) {
        let mut store = self.app.store.write().unwrap_or_else(|p| p.into_inner());
        store.expire_delta_tokens();
    }

    /// Every webhook call made so far (service endpoints registered through
    /// `sdkmessageprocessingsteps`), in order of completion.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.app.webhooks.deliveries()
    }

    /// Waits until at least `n` webhook calls completed or `timeout` passed, and returns every
    /// call made so far (fewer than `n` on timeout).
    pub fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<WebhookDelivery> {
        self.app.webhooks.wait_for(n, timeout)
    }

    /// Forgets the recorded webhook calls.
    pub fn clear_webhook_deliveries(&self) {
        self.app.webhooks.clear();
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some((_, path, true)) = self.ca.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Writes the CA certificate to `chosen`, or to a new file in the temporary directory (the
/// flag says the file is ours to remove on stop).
fn write_ca(
    pem: &str,
    chosen: Option<&Path>,
    addr: SocketAddr,
) -> anyhow::Result<(String, PathBuf, bool)> {
    use std::io::Write;
    if let Some(path) = chosen {
        std::fs::write(path, pem)
            .with_context(|| format!("writing the CA certificate to {}", path.display()))?;
        return Ok((pem.to_string(), path.to_path_buf(), false));
    }
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    for attempt in 0..100u32 {
        let path = dir.join(format!(
            "dataverse-emulator-ca-{}-{}-{:08x}.pem",
            addr.port(),
            std::process::id(),
            nanos.wrapping_add(attempt)
        ));
        // A new file only: never follow or overwrite what another user left in /tmp.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(pem.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok((pem.to_string(), path, true));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", path.display()));
            }
        }
    }
    Err(anyhow!(
        "could not create a CA certificate file in {}",
        dir.display()
    ))
}

/// The `fullname` and `azureactivedirectoryobjectid` of each signing-in user and of the
/// application user: the `name` and `oid` claims of their tokens.
fn profiles(
    store: &store::Store,
    users: &[(UserConfig, Guid)],
    application_user: Guid,
) -> Vec<(Guid, Option<String>, Option<String>)> {
    let Some(su) = store.schema.entity("systemuser") else {
        return Vec::new();
    };
    let text = |id: &Guid, col: &str| {
        let col = store.entity(su).attr(col)?;
        match &store.get(su, id)?.vals[col] {
            store::Val::Str(s) if !s.is_empty() => Some(s.to_string()),
            _ => None,
        }
    };
    users
        .iter()
        .map(|(_, id)| *id)
        .chain([application_user])
        .map(|id| {
            (
                id,
                text(&id, "fullname"),
                text(&id, "azureactivedirectoryobjectid"),
            )
        })
        .collect()
}

fn resolve_users(
    store: &store::Store,
    users: &[UserConfig],
    ids: &seed::Identities,
) -> Vec<(UserConfig, Guid)> {
    let su = store.schema.entity("systemuser");
    users
        .iter()
        .map(|u| {
            let id = su
                .and_then(|su| {
                    let col = store.entity(su).attr("domainname")?;
                    store
                        .rows(su)
                        .iter()
                        .find_map(|(id, r)| match &r.vals[col] {
                            store::Val::Str(s) if s.eq_ignore_ascii_case(&u.username) => Some(*id),
                            _ => None,
                        })
                })
                .unwrap_or(ids.admin_user);
            (u.clone(), id)
        })
        .collect()
}

#[cfg(test)]
mod request_log_tests {
    use super::{RecordedRequest, RequestLog};

    fn request(seq: u64, body: usize) -> RecordedRequest {
        RecordedRequest {
            seq,
            method: "POST".into(),
            path: "/api/data/v9.2/accounts".into(),
            headers: Vec::new(),
            body: vec![b'x'; body],
            status: None,
            fault: None,
        }
    }

    #[test]
    fn the_log_keeps_the_latest_requests_within_its_bounds_and_counts_what_it_dropped() {
        let mut log = RequestLog::with_bounds(100, 1000);
        for seq in 1..=103 {
            log.push(request(seq, 0));
        }
        assert_eq!(log.len(), 100);
        assert_eq!(log.dropped(), 3);
        assert_eq!(log.iter().next().map(|r| r.seq), Some(4));

        let mut log = RequestLog::with_bounds(100, 1000);
        for seq in 1..=4 {
            log.push(request(seq, 334));
        }
        assert_eq!(log.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
        // One request larger than the whole budget is still kept, alone.
        log.push(request(5, 1001));
        assert_eq!(log.iter().map(|r| r.seq).collect::<Vec<_>>(), [5]);
        assert_eq!(log.clear(), 1);
        assert!(log.is_empty());
    }
}
