//! Loading a component once and running each call in a fresh, limited `Store`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::dynamics::connector::{http as http_import, log as log_import, types};
use crate::bindings::exports::dynamics::connector::connections::AuthorizationRequest;
use crate::bindings::{Connector, ConnectorPre};
use crate::egress::{EgressPolicy, HostPattern};
use crate::error::{CallError, flatten};
use crate::governor::{Governor, Seen};
use crate::logging::{Level, LogLine, LogSink, StderrLog, redact};
use crate::outbound::{AllowList, Sender};
use crate::{CallResult, ComponentDefinition, Connection, InputType, Token};

/// Per-call resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory a call may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time a call may take, HTTP waits included.
    pub time: Duration,
    /// Largest response body the `http` import accepts, in bytes.
    pub max_response_bytes: u64,
    /// Longest single wait the `wait` import grants before a retry; longer requests are cut
    /// to this.
    pub max_retry_wait: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 64 << 20,
            time: Duration::from_secs(120),
            max_response_bytes: 64 << 20,
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

/// The operator's side of the egress policy: a call reaches an origin its connection declares
/// only when the host's patterns ([`crate::egress::DEFAULT_HOST_PATTERNS`] plus `extra_hosts`)
/// allow its host.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    /// Allow loopback and private addresses, literal or resolved (the emulator, tests).
    pub allow_private: bool,
    /// Host names or `*.suffix` patterns allowed besides the Dataverse, Finance & Operations and
    /// Entra ID hosts (a proxy, a sovereign cloud's own sign-in host).
    pub extra_hosts: Vec<String>,
    /// Names resolved to a fixed address instead of through DNS (curl's `--resolve`); the
    /// address is checked like a resolved one.
    pub pinned: Vec<(String, std::net::IpAddr)>,
    /// PEM certificates to trust instead of the public roots for HTTPS (a lab CA, the
    /// emulator's); empty trusts Mozilla's roots.
    pub root_certificates: Vec<Vec<u8>>,
}

impl NetworkPolicy {
    /// The host patterns and the private-address rule this policy stands for.
    pub fn egress(&self) -> EgressPolicy {
        let mut policy = EgressPolicy {
            allow_private: self.allow_private,
            ..EgressPolicy::default()
        };
        policy.hosts.extend(
            self.extra_hosts
                .iter()
                .filter_map(|host| HostPattern::parse(host)),
        );
        policy
    }
}

/// How a host runs components.
#[derive(Clone)]
pub struct HostConfig {
    pub limits: Limits,
    pub network: NetworkPolicy,
    pub log: Arc<dyn LogSink>,
    /// A folder to keep the compiled component in between processes
    /// ([`crate::compile_cache`]); None compiles at every start.
    pub compile_cache: Option<std::path::PathBuf>,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            limits: Limits::default(),
            network: NetworkPolicy::default(),
            log: Arc::new(StderrLog {
                min_level: Level::Warn,
            }),
            compile_cache: None,
        }
    }
}

/// A call that did not produce the component's own answer.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("the component ran longer than the time limit of {0:?} and was stopped")]
    TimeLimit(Duration),
    #[error("the component tried to use more than the memory limit of {0} MiB and was stopped")]
    MemoryLimit(usize),
    #[error("the component trapped: {0}")]
    Trap(String),
    #[error("the host failed: {0}")]
    Host(String),
}

/// Everything one call's `Store` holds.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryGuard,
    allow: AllowList,
    sender: Sender,
    deadline: Instant,
    max_retry_wait: Duration,
    secrets: Vec<String>,
    log: Arc<dyn LogSink>,
    /// Refuse every request without sending it (see [`Host::check_poll`]).
    offline: bool,
    /// Requests the component asked to send, refused ones included.
    requests: usize,
    /// A request ran into the call's deadline: the call used up its time limit.
    out_of_time: bool,
    /// The governor and the connection's account in it; None for calls without a connection.
    governed: Option<(Governor, String)>,
    /// Started requests of this call whose threads are still running, taken or not: a
    /// component that starts and drops requests in a loop cannot pile threads up.
    under_way: Arc<AtomicUsize>,
    /// Started requests the component holds (not yet finished or dropped).
    table_pending: usize,
    /// Set when the call's store goes: threads still waiting to send then send nothing.
    call_over: Arc<AtomicBool>,
}

impl Drop for State {
    fn drop(&mut self) {
        self.call_over.store(true, Ordering::Release);
    }
}

/// Most started requests of one call that run on threads of their own at once; past this,
/// `start` sends at once and keeps the answer, which the world allows. The component keeps one
/// page ahead, so this bounds a component that would start more, not the connector's reads.
const MAX_UNDER_WAY: usize = 8;

/// Most started requests one call may hold unfinished; past this, `start` fails the request.
/// The connector holds one.
const MAX_PENDING: usize = 16;

/// A request the component `start`ed: its answer, or the thread that is getting it.
pub struct PendingRequest {
    target: String,
    started: Instant,
    answer: PendingAnswer,
    /// Set when the component drops it: the thread sends nothing if it has not yet.
    cancelled: Arc<AtomicBool>,
}

/// One running request thread, counted in its call's `under_way` while it lives (a panic
/// included).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn count(under_way: &Arc<AtomicUsize>) -> Running {
        under_way.fetch_add(1, Ordering::AcqRel);
        Running(under_way.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

enum PendingAnswer {
    Ready(Result<http_import::Response, http_import::HttpError>),
    Running(thread::JoinHandle<Result<http_import::Response, http_import::HttpError>>),
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// wasmtime's store limits, remembering whether they refused a memory or table growth, so a
/// call stopped by the memory limit is reported as such whatever the trap's message says.
struct MemoryGuard {
    inner: StoreLimits,
    refused: bool,
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.inner.memory_growing(current, desired, maximum);
        self.refused |= !matches!(answer, Ok(true));
        answer
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.inner.table_growing(current, desired, maximum);
        self.refused |= !matches!(answer, Ok(true));
        answer
    }
}

impl types::Host for State {}

impl http_import::Host for State {
    fn send(
        &mut self,
        request: http_import::Request,
    ) -> Result<http_import::Response, http_import::HttpError> {
        self.requests += 1;
        if self.offline {
            return Err(offline_refusal());
        }
        let started = Instant::now();
        let target = describe_target(&request.method, &request.url);
        let result = self.send_now(request);
        self.note_result(&target, started, &result);
        result
    }

    fn send_all(
        &mut self,
        requests: Vec<http_import::Request>,
    ) -> Vec<Result<http_import::Response, http_import::HttpError>> {
        self.requests += requests.len();
        if self.offline {
            return requests.iter().map(|_| Err(offline_refusal())).collect();
        }
        let targets: Vec<String> = requests
            .iter()
            .map(|request| describe_target(&request.method, &request.url))
            .collect();
        let started = Instant::now();
        // Workers take the next request in turn; the governor decides when each may go, so
        // more workers than the account's parallelism only wait. The cap bounds threads.
        let workers = requests
            .len()
            .min(self.governed.as_ref().map_or(4, |(governor, _)| {
                governor.budget().concurrent.max(1) as usize
            }))
            .max(1);
        let results = run_together(requests, workers, |request| {
            governed_send(
                &self.sender,
                &self.allow,
                self.deadline,
                self.governed.as_ref(),
                request,
                &|| false,
            )
        });
        for (target, result) in targets.iter().zip(&results) {
            self.note_result(target, started, result);
        }
        results
    }

    fn start(&mut self, request: http_import::Request) -> Resource<PendingRequest> {
        self.requests += 1;
        let target = describe_target(&request.method, &request.url);
        let started = Instant::now();
        let cancelled = Arc::new(AtomicBool::new(false));
        let answer = if self.offline {
            PendingAnswer::Ready(Err(offline_refusal()))
        } else if self.table_pending >= MAX_PENDING {
            // Answers wait in the host, outside the component's memory limit: a component that
            // starts requests and never takes them must not make the host hold more.
            PendingAnswer::Ready(Err(http_import::HttpError::InvalidRequest(format!(
                "{MAX_PENDING} started requests are not finished yet; finish or drop one first"
            ))))
        } else if self.under_way.load(Ordering::Acquire) >= MAX_UNDER_WAY {
            PendingAnswer::Ready(self.send_now(request))
        } else {
            let (sender, allow, deadline, governed, under_way, call_over, dropped) = (
                self.sender.clone(),
                self.allow.clone(),
                self.deadline,
                self.governed.clone(),
                Running::count(&self.under_way),
                self.call_over.clone(),
                cancelled.clone(),
            );
            // A thread per started request: the component keeps at most a page ahead, and a
            // request's own work (TLS, the body) dwarfs starting a thread. It ends by the call's
            // deadline at the latest, whether or not the call is still there to take the answer,
            // and sends nothing once the answer is not wanted (dropped, or the call over) by the
            // time the governor lets it go.
            thread::Builder::new()
                .name("dynamics-http".to_string())
                .spawn(move || {
                    let _running = under_way;
                    let unwanted =
                        || dropped.load(Ordering::Acquire) || call_over.load(Ordering::Acquire);
                    governed_send(
                        &sender,
                        &allow,
                        deadline,
                        governed.as_ref(),
                        request,
                        &unwanted,
                    )
                })
                .map(PendingAnswer::Running)
                .unwrap_or_else(|error| {
                    PendingAnswer::Ready(Err(http_import::HttpError::ConnectionFailed(format!(
                        "the host could not start a thread for the request: {error}"
                    ))))
                })
        };
        let pending = PendingRequest {
            target,
            started,
            answer,
            cancelled,
        };
        self.table_pending += 1;
        // With at most MAX_PENDING entries the table cannot be full; were it so, the handle
        // names nothing and `finish` answers that it is unknown.
        self.table
            .push(pending)
            .unwrap_or_else(|_| Resource::new_own(u32::MAX))
    }

    fn finish(
        &mut self,
        pending: Resource<PendingRequest>,
    ) -> Result<http_import::Response, http_import::HttpError> {
        let Ok(pending) = self.table.delete(pending) else {
            return Err(http_import::HttpError::InvalidRequest(
                "the started request is unknown to the host".to_string(),
            ));
        };
        self.table_pending -= 1;
        let result = match pending.answer {
            PendingAnswer::Ready(result) => result,
            PendingAnswer::Running(handle) => handle.join().unwrap_or_else(|_| {
                Err(http_import::HttpError::ConnectionFailed(
                    "the host's request thread failed".to_string(),
                ))
            }),
        };
        self.note_result_of(&pending.target, pending.started, &result, ", started ahead");
        result
    }

    fn wait(&mut self, duration_ms: u32) -> bool {
        if self.offline {
            return false;
        }
        let wanted = Duration::from_millis(u64::from(duration_ms)).min(self.max_retry_wait);
        let left = self.deadline.saturating_duration_since(Instant::now());
        // Keep a margin so the request after the wait still has time to run.
        if wanted + Duration::from_millis(50) >= left {
            return false;
        }
        thread::sleep(wanted);
        true
    }
}

impl http_import::HostPending for State {
    /// A started request dropped unfinished: its answer is thrown away when it comes. The
    /// request itself runs to its end on its thread (it may already be on the wire).
    fn drop(&mut self, pending: Resource<PendingRequest>) -> wasmtime::Result<()> {
        if let Ok(pending) = self.table.delete(pending) {
            self.table_pending -= 1;
            pending.cancelled.store(true, Ordering::Release);
            self.write_log(
                Level::Debug,
                "host",
                &format!("{} -> not taken by the component", pending.target),
            );
        }
        Ok(())
    }
}

impl log_import::Host for State {
    fn log(&mut self, level: log_import::Level, message: String) {
        let level = match level {
            log_import::Level::Trace => Level::Trace,
            log_import::Level::Debug => Level::Debug,
            log_import::Level::Info => Level::Info,
            log_import::Level::Warn => Level::Warn,
            log_import::Level::Error => Level::Error,
        };
        self.write_log(level, "component", &message);
    }
}

/// What every request of an offline call ([`Host::check_poll`]) gets, unsent.
fn offline_refusal() -> http_import::HttpError {
    http_import::HttpError::Denied("the host is checking the call's input and sends nothing".into())
}

/// Sends `request` once its connection's account admits it, and tells the governor what came
/// back. A request the deadline overtakes while it waits is a timeout, unsent; so is one whose
/// answer is no longer wanted (`unwanted`, a started request dropped) when its turn comes.
fn governed_send(
    sender: &Sender,
    allow: &AllowList,
    deadline: Instant,
    governed: Option<&(Governor, String)>,
    request: http_import::Request,
    unwanted: &dyn Fn() -> bool,
) -> Result<http_import::Response, http_import::HttpError> {
    // A refused destination is answered at once, without spending the account's budget.
    if let Some(reason) = allow.refusal(&request.url) {
        return Err(http_import::HttpError::Denied(reason));
    }
    if unwanted() {
        return Err(http_import::HttpError::Timeout);
    }
    let Some((governor, account)) = governed else {
        return sender.send(request, allow, deadline);
    };
    let Some(permit) = governor.admit(account, deadline) else {
        return Err(http_import::HttpError::Timeout);
    };
    if unwanted() {
        permit.finish(None);
        return Err(http_import::HttpError::Timeout);
    }
    let result = sender.send(request, allow, deadline);
    permit.finish(result.as_ref().ok().map(|response| Seen {
        status: Some(response.status),
        headers: &response.headers,
    }));
    result
}

/// Runs `send` over `requests` on up to `workers` threads, results in the requests' order.
fn run_together<T: Send, R: Send>(
    requests: Vec<T>,
    workers: usize,
    send: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if workers <= 1 || requests.len() <= 1 {
        return requests.into_iter().map(send).collect();
    }
    let count = requests.len();
    let queue = std::sync::Mutex::new(requests.into_iter().enumerate());
    let done = std::sync::Mutex::new(Vec::with_capacity(count));
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((index, request)) = next else {
                        break;
                    };
                    let result = send(request);
                    done.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

impl State {
    /// Sends `request` in the call's own thread, within the call's policy and budget.
    fn send_now(
        &self,
        request: http_import::Request,
    ) -> Result<http_import::Response, http_import::HttpError> {
        governed_send(
            &self.sender,
            &self.allow,
            self.deadline,
            self.governed.as_ref(),
            request,
            &|| false,
        )
    }

    /// Logs one request's outcome, and notes a timeout that the call's deadline caused.
    fn note_result(
        &mut self,
        target: &str,
        started: Instant,
        result: &Result<http_import::Response, http_import::HttpError>,
    ) {
        self.note_result_of(target, started, result, "");
    }

    /// [`State::note_result`] with `how` after the figures (", started ahead").
    fn note_result_of(
        &mut self,
        target: &str,
        started: Instant,
        result: &Result<http_import::Response, http_import::HttpError>,
        how: &str,
    ) {
        if matches!(result, Err(http_import::HttpError::Timeout))
            && self.deadline.saturating_duration_since(Instant::now()) < DEADLINE_MARGIN
        {
            self.out_of_time = true;
        }
        let message = match result {
            Ok(response) => format!(
                "{target} -> {} ({} ms, {} bytes{how})",
                response.status,
                started.elapsed().as_millis(),
                response.body.len()
            ),
            Err(failure) => format!("{target} -> {failure:?}{how}"),
        };
        self.write_log(Level::Debug, "host", &message);
    }

    fn write_log(&self, level: Level, source: &'static str, message: &str) {
        // The refusals of an offline check are the host's own doing, not news for the user.
        if self.offline {
            return;
        }
        self.log.write(LogLine {
            level,
            source,
            message: redact(message, &self.secrets),
        });
    }
}

/// `METHOD scheme://host/path`, without the query string (it can carry personal data).
fn describe_target(method: &str, url: &str) -> String {
    format!("{method} {}", url.split('?').next().unwrap_or_default())
}

/// Time slices of the epoch ticker; the time limit is enforced to this precision.
const TICK: Duration = Duration::from_millis(5);

/// A request that timed out with less than this left of its call's time ended because of the
/// time limit, not because of its own timeout.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// A loaded component, ready to run calls.
pub struct Host {
    engine: Engine,
    pre: ConnectorPre<State>,
    config: HostConfig,
    sender: Sender,
    /// The host's egress policy, fixed for the host's life.
    egress: EgressPolicy,
    /// The budget every request of a connection is sent within ([`crate::governor`]), shared
    /// by all calls of this host (and, with Redis counters, of other hosts).
    governor: Governor,
    definition: ComponentDefinition,
}

impl Host {
    /// Compiles `bytes` (a component of the `connector` world) and links it.
    pub fn new(bytes: &[u8], config: HostConfig) -> anyhow::Result<Host> {
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true);
        // `DYNAMICS_PERFMAP=1` names the guest's compiled functions for `perf`
        // (/tmp/perf-PID.map): how a slow call is profiled down to the connector's own code.
        if std::env::var_os("DYNAMICS_PERFMAP").is_some_and(|v| v == "1") {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm_config)?;
        let component = match &config.compile_cache {
            Some(dir) => crate::compile_cache::load_or_compile(&engine, bytes, dir)?,
            None => Component::new(&engine, bytes)
                .map_err(anyhow::Error::from)
                .context("compiling the component")?,
        };
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Connector::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component does not fit the connector world")?;
        let pre = ConnectorPre::new(instance_pre)?;
        spawn_ticker(&engine);
        let sender = Sender::new(config.limits.max_response_bytes, &config.network)?;
        let egress = config.network.egress();
        let mut host = Host {
            engine,
            pre,
            config,
            sender,
            egress,
            governor: Governor::default(),
            definition: empty_definition(),
        };
        host.definition = host.call(None, |connector, store| {
            connector
                .dynamics_connector_component()
                .call_definition(store)
        })?;
        Ok(host)
    }

    /// This host with `governor` instead of its own in-memory one: a budget shared with other
    /// hosts (Redis counters, [`Governor::from_env`]) or another user's limits.
    pub fn with_governor(mut self, governor: Governor) -> Host {
        self.governor = governor;
        self
    }

    /// Loads the Dynamics component embedded in this binary.
    pub fn builtin(config: HostConfig) -> anyhow::Result<Host> {
        Host::new(crate::DYNAMICS_COMPONENT, config)
    }

    /// Loads a component file.
    pub fn from_file(path: &Path, config: HostConfig) -> anyhow::Result<Host> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        Host::new(&bytes, config)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The component's definitions, read once at load time.
    pub fn definition(&self) -> &ComponentDefinition {
        &self.definition
    }

    /// Runs action `key` with `input` (a JSON object) on `connection`.
    pub fn invoke(&self, key: &str, connection: &Connection, input: &str) -> CallResult<String> {
        let (key, input) = (key.to_string(), input.to_string());
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_actions()
                .call_invoke(store, &key, connection, &input)
        }))
    }

    /// Asks the component for a token without a user (client credentials, password).
    pub fn acquire_token(&self, connection: &Connection) -> CallResult<Token> {
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_connections()
                .call_acquire_token(store, connection)
        }))
    }

    /// Refreshes an auth-code connection's token.
    pub fn refresh(&self, connection: &Connection, refresh_token: &str) -> CallResult<Token> {
        flatten(
            self.call_with_secrets(Some(connection), &[refresh_token], |connector, store| {
                connector.dynamics_connector_connections().call_refresh(
                    store,
                    connection,
                    refresh_token,
                )
            }),
        )
    }

    /// Starts an authorization-code sign-in.
    pub fn begin_authorization(
        &self,
        connection: &Connection,
        redirect_uri: &str,
    ) -> CallResult<AuthorizationRequest> {
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_connections()
                .call_begin_authorization(store, connection, redirect_uri)
        }))
    }

    /// Finishes an authorization-code sign-in.
    pub fn exchange_code(
        &self,
        connection: &Connection,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> CallResult<Token> {
        flatten(
            self.call_with_secrets(Some(connection), &[code, verifier], |connector, store| {
                connector
                    .dynamics_connector_connections()
                    .call_exchange_code(store, connection, redirect_uri, code, verifier)
            }),
        )
    }

    /// Hands one received webhook request to trigger `key`. Webhooks need no connection.
    pub fn handle_webhook(
        &self,
        key: &str,
        config: &str,
        request: crate::IncomingRequest,
    ) -> CallResult<crate::WebhookOutcome> {
        let (key, config) = (key.to_string(), config.to_string());
        flatten(self.call(None, |connector, store| {
            connector
                .dynamics_connector_triggers()
                .call_handle_webhook(store, &key, None, &config, &request)
        }))
    }

    /// Registers trigger `key` with the service so that it calls `webhook_url`; returns the state
    /// to keep for [`Host::disable_trigger`].
    pub fn enable_trigger(
        &self,
        key: &str,
        connection: &Connection,
        config: &str,
        webhook_url: &str,
    ) -> CallResult<String> {
        let (key, config, url) = (key.to_string(), config.to_string(), webhook_url.to_string());
        flatten(self.call(Some(connection), |connector, store| {
            connector.dynamics_connector_triggers().call_enable(
                store,
                &key,
                connection,
                &config,
                Some(&url),
            )
        }))
    }

    /// Removes what [`Host::enable_trigger`] registered.
    pub fn disable_trigger(
        &self,
        key: &str,
        connection: &Connection,
        config: &str,
        state: &str,
    ) -> CallResult<()> {
        let (key, config, state) = (key.to_string(), config.to_string(), state.to_string());
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_triggers()
                .call_disable(store, &key, connection, &config, &state)
        }))
    }

    /// Polls trigger `key` once with the state the previous poll returned.
    pub fn poll(
        &self,
        key: &str,
        connection: &Connection,
        config: &str,
        state: Option<&str>,
    ) -> CallResult<crate::PollOutcome> {
        let (key, config, state) = (
            key.to_string(),
            config.to_string(),
            state.map(str::to_string),
        );
        flatten(self.call(Some(connection), |connector, store| {
            connector.dynamics_connector_triggers().call_poll(
                store,
                &key,
                connection,
                &config,
                state.as_ref(),
            )
        }))
    }

    /// Runs one poll of trigger `key` with the network shut, to learn whether the component
    /// refuses the config, the state or the connection before sending anything: a
    /// [`CallError::Connector`] is that refusal. `Ok(())` means the poll got as far as its first
    /// request, so nothing was wrong that a token and the service are not needed to tell.
    /// Nothing is sent and no token is needed, so a config that can never work costs no sign-in.
    pub fn check_poll(
        &self,
        key: &str,
        connection: &Connection,
        config: &str,
        state: Option<&str>,
    ) -> CallResult<()> {
        let mut connection = connection.clone();
        // Without a token the component could stop before the checks that matter here; this one
        // never leaves the host.
        connection.token.get_or_insert_with(|| Token {
            access_token: "offline-check".to_string(),
            token_type: "Bearer".to_string(),
            refresh_token: None,
            expires_in_secs: None,
            scope: None,
        });
        let (key, config, state) = (
            key.to_string(),
            config.to_string(),
            state.map(str::to_string),
        );
        let (outcome, requests) =
            self.call_in(true, Some(&connection), &[], |connector, store| {
                let outcome = connector.dynamics_connector_triggers().call_poll(
                    &mut *store,
                    &key,
                    &connection,
                    &config,
                    state.as_ref(),
                )?;
                Ok((outcome, store.data().requests))
            })?;
        match outcome {
            Err(failure) if requests == 0 => Err(failure.into()),
            _ => Ok(()),
        }
    }

    /// Lists the choices of data source `key` (entity types, columns) for a designer's picklist.
    pub fn choices(
        &self,
        key: &str,
        connection: &Connection,
        input: &str,
    ) -> CallResult<Vec<crate::bindings::dynamics::connector::types::Choice>> {
        let (key, input) = (key.to_string(), input.to_string());
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_actions()
                .call_choices(store, &key, connection, &input)
        }))
    }

    /// The inputs of action `key` given the inputs chosen so far: its own, then those the
    /// environment adds (the parameters of a Dataverse action), for a designer's form.
    pub fn input_definitions(
        &self,
        key: &str,
        connection: &Connection,
        input: &str,
    ) -> CallResult<Vec<crate::bindings::dynamics::connector::types::InputDefinition>> {
        let (key, input) = (key.to_string(), input.to_string());
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_actions()
                .call_input_definitions(store, &key, connection, &input)
        }))
    }

    /// Tests a connection.
    pub fn test_connection(&self, connection: &Connection) -> CallResult<String> {
        flatten(self.call(Some(connection), |connector, store| {
            connector
                .dynamics_connector_connections()
                .call_test(store, connection)
        }))
    }

    /// The origins a connection may reach, as the component declares them; an error when the
    /// connection's fields are not valid (nothing is sent).
    pub fn endpoints(&self, connection: &Connection) -> CallResult<Vec<String>> {
        flatten(self.call(None, |connector, store| {
            connector
                .dynamics_connector_connections()
                .call_endpoints(store, connection)
        }))
    }

    /// Runs `f` on a fresh instance. With a connection, the instance may reach the origins the
    /// connection declares (asked of the same instance first), and the connection's secrets are
    /// redacted from its log lines.
    fn call<R>(
        &self,
        connection: Option<&Connection>,
        f: impl FnOnce(&Connector, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.call_with_secrets(connection, &[], f)
    }

    /// [`Host::call`] with more values to redact (refresh tokens, authorization codes).
    fn call_with_secrets<R>(
        &self,
        connection: Option<&Connection>,
        extra_secrets: &[&str],
        f: impl FnOnce(&Connector, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.call_in(false, connection, extra_secrets, f)
    }

    /// [`Host::call_with_secrets`], with every request refused unsent when `offline`.
    fn call_in<R>(
        &self,
        offline: bool,
        connection: Option<&Connection>,
        extra_secrets: &[&str],
        f: impl FnOnce(&Connector, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let limits = &self.config.limits;
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: MemoryGuard {
                inner: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .trap_on_grow_failure(true)
                    .build(),
                refused: false,
            },
            allow: AllowList::new(self.config.network.allow_private),
            sender: self.sender.clone(),
            deadline: Instant::now() + limits.time,
            max_retry_wait: limits.max_retry_wait,
            secrets: connection
                .map(|c| self.secrets_of(c))
                .unwrap_or_default()
                .into_iter()
                .chain(extra_secrets.iter().map(|secret| secret.to_string()))
                .collect(),
            log: self.config.log.clone(),
            offline,
            requests: 0,
            under_way: Arc::new(AtomicUsize::new(0)),
            table_pending: 0,
            call_over: Arc::new(AtomicBool::new(false)),
            out_of_time: false,
            governed: connection.map(|connection| {
                let secret_keys = self.secret_keys(connection);
                (
                    self.governor.clone(),
                    crate::governor::account_of(
                        &connection.definition,
                        &connection.fields,
                        &secret_keys,
                    ),
                )
            }),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let ticks = (limits.time.as_millis() / TICK.as_millis()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let connector = self
            .pre
            .instantiate(&mut store)
            .map_err(|error| self.classify(error, &store))?;
        if let Some(connection) = connection {
            // A connection the component cannot read declares no origins; the call that follows
            // reports the problem itself.
            let endpoints = connector
                .dynamics_connector_connections()
                .call_endpoints(&mut store, connection)
                .map_err(|error| self.classify(error, &store))?;
            for origin in endpoints.unwrap_or_default() {
                store.data_mut().allow.add_origin(&origin, &self.egress);
            }
        }
        let result = f(&connector, &mut store).map_err(|error| self.classify(error, &store))?;
        // The component answers a request cut by the deadline with its own timeout error; it is
        // the host's limit all the same, and reported as such (as when the epoch runs out).
        if store.data().out_of_time {
            return Err(HostError::TimeLimit(limits.time));
        }
        Ok(result)
    }

    /// Which limit stopped a call, from what the store saw (the epoch trap, the memory guard),
    /// not from the error's text.
    fn classify(&self, error: wasmtime::Error, store: &Store<State>) -> HostError {
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return HostError::TimeLimit(self.config.limits.time);
        }
        if store.data().limits.refused {
            return HostError::MemoryLimit(self.config.limits.memory_bytes >> 20);
        }
        HostError::Trap(format!("{error:#}"))
    }

    /// Keys of the connection type's secret inputs (client secrets, passwords).
    pub fn secret_keys(&self, connection: &Connection) -> Vec<&str> {
        self.definition
            .connections
            .iter()
            .filter(|definition| definition.key == connection.definition)
            .flat_map(|definition| definition.inputs.iter())
            .filter(|input| input.input_type == InputType::Secret)
            .map(|input| input.key.as_str())
            .collect()
    }

    /// Values of the connection's secret fields and tokens: never logged.
    fn secrets_of(&self, connection: &Connection) -> Vec<String> {
        let secret_keys = self.secret_keys(connection);
        let mut secrets: Vec<String> = connection
            .fields
            .iter()
            .filter(|(key, _)| secret_keys.contains(&key.as_str()))
            .map(|(_, value)| value.clone())
            .collect();
        if let Some(token) = &connection.token {
            secrets.push(token.access_token.clone());
            secrets.extend(token.refresh_token.clone());
        }
        secrets
    }
}

/// Advances the engine's epoch every tick while the engine lives.
fn spawn_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("epoch-ticker".to_string())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(TICK);
            }
        })
        .map(|_| ())
        .unwrap_or_else(|problem| eprintln!("could not start the epoch ticker: {problem}"));
}

fn empty_definition() -> ComponentDefinition {
    ComponentDefinition {
        key: String::new(),
        name: String::new(),
        version: String::new(),
        description: String::new(),
        category: String::new(),
        icon: String::new(),
        connections: Vec::new(),
        actions: Vec::new(),
        triggers: Vec::new(),
        data_sources: Vec::new(),
    }
}

impl Host {
    /// The connection type's kind, from the component's definitions.
    pub fn connection_kind(&self, connection: &Connection) -> Option<types::ConnectionKind> {
        self.definition
            .connections
            .iter()
            .find(|definition| definition.key == connection.definition)
            .map(|definition| definition.kind)
    }

    /// Gets a token for connections that can get one without a user, when there is none.
    pub fn ensure_token(&self, connection: &mut Connection) -> CallResult<()> {
        if connection.token.is_some() {
            return Ok(());
        }
        match self.connection_kind(connection) {
            Some(
                types::ConnectionKind::Oauth2ClientCredentials
                | types::ConnectionKind::Oauth2Password,
            ) => {
                connection.token = Some(self.acquire_token(connection)?);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A new token for `connection`, the one place tokens are renewed: refreshed with the
    /// refresh token it holds (auth code), or acquired again (client credentials, password).
    /// None when it cannot be renewed without the user (auth code without a refresh token, or a
    /// connection type the component does not define). [`crate::TokenManager`] adds its store
    /// around this.
    pub fn renew_token(&self, connection: &Connection) -> CallResult<Option<Token>> {
        match self.connection_kind(connection) {
            Some(types::ConnectionKind::Oauth2AuthorizationCode) => {
                match connection
                    .token
                    .as_ref()
                    .and_then(|t| t.refresh_token.as_deref())
                {
                    Some(refresh_token) => self.refresh(connection, refresh_token).map(Some),
                    None => Ok(None),
                }
            }
            Some(
                types::ConnectionKind::Oauth2ClientCredentials
                | types::ConnectionKind::Oauth2Password,
            ) => self.acquire_token(connection).map(Some),
            None => Ok(None),
        }
    }

    /// Runs `key` and, when the service refuses the token (`unauthenticated`), lets `renew` put
    /// a new one on the connection and runs once more: the retry both [`Host::run_action`] and
    /// [`crate::TokenManager::run_action`] use.
    pub fn invoke_renewing(
        &self,
        key: &str,
        connection: &mut Connection,
        input: &str,
        renew: impl FnOnce(&mut Connection) -> CallResult<bool>,
    ) -> CallResult<String> {
        let first = self.invoke(key, connection, input);
        match &first {
            Err(CallError::Connector(failure))
                if failure.code == crate::ErrorCode::Unauthenticated
                    && connection.token.is_some() => {}
            _ => return first,
        }
        if renew(connection)? {
            self.invoke(key, connection, input)
        } else {
            first
        }
    }

    /// Runs an action the way a workflow host does: get a token if the connection can, run, and
    /// on `unauthenticated` renew the token once (refresh or re-acquire) and run again.
    pub fn run_action(
        &self,
        key: &str,
        connection: &mut Connection,
        input: &str,
    ) -> CallResult<String> {
        self.ensure_token(connection)?;
        self.invoke_renewing(key, connection, input, |connection| {
            Ok(match self.renew_token(connection)? {
                Some(token) => {
                    connection.token = Some(token);
                    true
                }
                None => false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::egress::EgressPolicy;
    use crate::governor::Budget;

    /// A request whose answer stops being wanted while the governor holds it back (a dropped
    /// `pending`, a call that ended) is never sent; the same request still wanted is.
    #[test]
    fn a_started_request_dropped_while_it_waits_for_its_turn_is_never_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let accepted = Arc::new(AtomicUsize::new(0));
        {
            let accepted = accepted.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut stream) = stream {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        );
                    }
                }
            });
        }
        let network = NetworkPolicy {
            allow_private: true,
            ..NetworkPolicy::default()
        };
        let sender = Sender::new(1 << 20, &network).unwrap();
        let mut allow = AllowList::new(true);
        allow.add_origin(
            &origin,
            &EgressPolicy {
                allow_private: true,
                ..EgressPolicy::default()
            },
        );
        let governor = Governor::in_memory(Budget {
            concurrent: 1,
            initial_parallelism: 1,
            ..Budget::default()
        });
        let governed = (governor.clone(), "account".to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = format!("{origin}/page");
        let request = move || http_import::Request {
            method: "GET".to_string(),
            url: url.clone(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        };

        for wanted in [false, true] {
            // The account's one slot is taken, so the request waits for its turn.
            let held = governor
                .admit("account", deadline)
                .expect("the slot is free");
            let dropped = Arc::new(AtomicBool::new(false));
            let waiting = {
                let (sender, allow, governed, dropped, request) = (
                    sender.clone(),
                    allow.clone(),
                    governed.clone(),
                    dropped.clone(),
                    request.clone(),
                );
                thread::spawn(move || {
                    let unwanted = || dropped.load(Ordering::Acquire);
                    governed_send(
                        &sender,
                        &allow,
                        deadline,
                        Some(&governed),
                        request(),
                        &unwanted,
                    )
                })
            };
            thread::sleep(Duration::from_millis(100));
            dropped.store(!wanted, Ordering::Release);
            held.finish(None);
            let result = waiting.join().unwrap();
            if wanted {
                assert_eq!(result.unwrap().status, 200);
                assert_eq!(
                    accepted.load(Ordering::SeqCst),
                    1,
                    "the wanted one was sent"
                );
            } else {
                assert!(matches!(result, Err(http_import::HttpError::Timeout)));
                assert_eq!(
                    accepted.load(Ordering::SeqCst),
                    0,
                    "the dropped one was not"
                );
            }
        }
    }
}
