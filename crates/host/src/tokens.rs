//! Token management for hosts: a local store of tokens per connection, and a manager that
//! keeps them fresh.
//!
//! The store is one JSON file readable by its owner only (file `0600`, directory `0700`), by
//! default `$XDG_STATE_HOME/dynamics-connector/tokens.json` or
//! `~/.local/state/dynamics-connector/tokens.json`. Each entry is keyed by a connection name and
//! remembers the connection's non-secret fields, so a token is never reused for a connection
//! whose environment, client or user changed. Expiry is stored as an absolute time.
//!
//! The manager puts a usable token on a connection before a call: the stored one while it has
//! more than a few minutes left, otherwise a refreshed (auth code) or newly acquired (client
//! credentials, password) one; and when the service still answers `unauthenticated`, it renews
//! once more and retries before the action fails.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::bindings::dynamics::connector::types::ConnectionKind;
use crate::{CallError, CallResult, Connection, ConnectorError, ErrorCode, Host, HostError, Token};

/// A token is renewed when less than this many seconds are left (or less than half of its
/// lifetime, for short-lived tokens).
pub const REFRESH_MARGIN_SECS: u64 = 300;

const FILE_VERSION: u32 = 1;

/// One connection's tokens, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    /// The connection type, such as `oauth2-auth-code`.
    pub connection_type: String,
    /// The connection's non-secret fields when the token was obtained.
    pub binding: BTreeMap<String, String>,
    pub access_token: String,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the token was obtained, in seconds since the Unix epoch.
    pub obtained_at: u64,
    /// When the access token expires, in seconds since the Unix epoch; unknown when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("connection_type", &self.connection_type)
            .field("binding", &self.binding)
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl StoredToken {
    /// Records `token`, obtained at `now`, for `connection` (whose binding is `binding`).
    pub fn new(
        connection: &Connection,
        binding: BTreeMap<String, String>,
        token: &Token,
        now: u64,
    ) -> StoredToken {
        StoredToken {
            connection_type: connection.definition.clone(),
            binding,
            access_token: token.access_token.clone(),
            token_type: token.token_type.clone(),
            refresh_token: token.refresh_token.clone(),
            scope: token.scope.clone(),
            obtained_at: now,
            expires_at: token
                .expires_in_secs
                .map(|secs| now.saturating_add(u64::from(secs))),
        }
    }

    /// The token as a connection carries it, with the lifetime left at `now`.
    pub fn token(&self, now: u64) -> Token {
        Token {
            access_token: self.access_token.clone(),
            token_type: self.token_type.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_in_secs: self
                .expires_at
                .map(|at| u32::try_from(at.saturating_sub(now)).unwrap_or(u32::MAX)),
            scope: self.scope.clone(),
        }
    }

    /// True once the access token has expired (never, when its expiry is unknown).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// True when the token should be renewed before use: expired, or within the margin.
    pub fn needs_renewal(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| {
            let lifetime = at.saturating_sub(self.obtained_at);
            let margin = REFRESH_MARGIN_SECS.min(lifetime / 2);
            now.saturating_add(margin) >= at
        })
    }

    /// True when a refresh token is kept.
    pub fn can_refresh(&self) -> bool {
        self.refresh_token.is_some()
    }
}

/// What `status` shows of one stored connection: never the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    pub key: String,
    pub connection_type: String,
    /// The Web API URL as entered.
    pub environment: Option<String>,
    pub expires_at: Option<u64>,
    /// The access token is still usable.
    pub valid: bool,
    /// A refresh token is kept, so an expired token renews without signing in.
    pub refreshable: bool,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    #[serde(default)]
    connections: BTreeMap<String, StoredToken>,
}

impl Default for StoreFile {
    fn default() -> StoreFile {
        StoreFile {
            version: FILE_VERSION,
            connections: BTreeMap::new(),
        }
    }
}

/// The token store file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// A store in `path`; nothing is read or created until used.
    pub fn open(path: impl Into<PathBuf>) -> TokenStore {
        TokenStore { path: path.into() }
    }

    /// `$XDG_STATE_HOME/dynamics-connector/tokens.json`, or under `~/.local/state`.
    pub fn default_path() -> anyhow::Result<PathBuf> {
        let state_home = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|path| path.is_absolute());
        let base = match state_home {
            Some(path) => path,
            None => match std::env::var_os("HOME").map(PathBuf::from) {
                Some(home) if home.is_absolute() => home.join(".local").join("state"),
                _ => bail!(
                    "neither XDG_STATE_HOME nor HOME is set; choose a token store with --token-store PATH"
                ),
            },
        };
        Ok(base.join("dynamics-connector").join("tokens.json"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored token of `key`, if any.
    pub fn get(&self, key: &str) -> anyhow::Result<Option<StoredToken>> {
        Ok(self.load()?.connections.remove(key))
    }

    /// Stores (or replaces) the token of `key`.
    pub fn put(&self, key: &str, token: StoredToken) -> anyhow::Result<()> {
        let _writing = write_lock();
        let mut file = self.load()?;
        file.connections.insert(key.to_string(), token);
        self.save(&file)
    }

    /// Forgets the token of `key`; true when there was one.
    pub fn remove(&self, key: &str) -> anyhow::Result<bool> {
        let _writing = write_lock();
        let mut file = self.load()?;
        let removed = file.connections.remove(key).is_some();
        if removed {
            self.save(&file)?;
        }
        Ok(removed)
    }

    /// Every stored connection with its state at `now`, by key.
    pub fn status(&self, now: u64) -> anyhow::Result<Vec<TokenStatus>> {
        Ok(self
            .load()?
            .connections
            .into_iter()
            .map(|(key, token)| TokenStatus {
                environment: token.binding.get("webApiUrl").cloned(),
                expires_at: token.expires_at,
                valid: !token.is_expired(now),
                refreshable: token.can_refresh(),
                connection_type: token.connection_type,
                key,
            })
            .collect())
    }

    fn load(&self) -> anyhow::Result<StoreFile> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(problem) if problem.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StoreFile::default());
            }
            Err(problem) => {
                return Err(problem)
                    .with_context(|| format!("reading the token store {}", self.path.display()));
            }
        };
        tighten_permissions(&self.path)?;
        // serde_json's messages name a line and column, never the content.
        let file: StoreFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "the token store {} is not valid; delete it to start over",
                self.path.display()
            )
        })?;
        if file.version != FILE_VERSION {
            bail!(
                "the token store {} has version {}, this program reads version {FILE_VERSION}",
                self.path.display(),
                file.version
            );
        }
        Ok(file)
    }

    /// Writes the whole file: a private temporary file renamed over the old one.
    fn save(&self, file: &StoreFile) -> anyhow::Result<()> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            create_private_dir(&dir)
                .with_context(|| format!("creating the token store directory {}", dir.display()))?;
        }
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens.json".to_string());
        // Unique per write, so that writers never share a temporary file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let temporary = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = fs::remove_file(&temporary);
        let text = serde_json::to_string_pretty(file).context("encoding the token store")?;
        let written = (|| -> std::io::Result<()> {
            let mut out = create_private_file(&temporary)?;
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
            out.sync_all()?;
            fs::rename(&temporary, &self.path)
        })();
        if let Err(problem) = written {
            let _ = fs::remove_file(&temporary);
            return Err(problem)
                .with_context(|| format!("writing the token store {}", self.path.display()));
        }
        tighten_permissions(&self.path)
    }
}

/// One load-modify-save at a time in this process: the designer renews tokens from several
/// threads (API calls, webhook events, the poller), and two interleaved updates would lose one.
fn write_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Creates `dir` and its missing parents readable by their owner only. With `tighten`, an
/// existing `dir` others can read or enter is made owner-only too (a folder an older version
/// created with the default mode).
pub fn ensure_private_dir(dir: &Path, tighten: bool) -> anyhow::Result<()> {
    // The parent of a bare file name: the current directory, which is never the tool's to change.
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if !dir.exists() {
        return create_private_dir(dir).with_context(|| format!("creating {}", dir.display()));
    }
    if tighten {
        tighten_dir(dir)?;
    }
    Ok(())
}

#[cfg(unix)]
fn tighten_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(dir)
        .with_context(|| format!("reading the permissions of {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & !0o077))
            .with_context(|| format!("making {} owner-only", dir.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_dir(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Makes the store file owner-only again if something loosened it.
#[cfg(unix)]
fn tighten_permissions(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path)
        .with_context(|| format!("reading the permissions of {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} owner-only", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_permissions(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub fn format_utc(secs: u64) -> String {
    let iso = dataverse::encoding::iso_datetime(i64::try_from(secs).unwrap_or(i64::MAX / 2));
    // `YYYY-MM-DDTHH:MM:SSZ`, written the way a person reads it.
    format!("{} UTC", iso.replacen('T', " ", 1).trim_end_matches('Z'))
}

/// Keeps a store's tokens fresh for calls through a host.
pub struct TokenManager<'a> {
    host: &'a Host,
    store: &'a TokenStore,
    now: Option<u64>,
}

impl<'a> TokenManager<'a> {
    pub fn new(host: &'a Host, store: &'a TokenStore) -> TokenManager<'a> {
        TokenManager {
            host,
            store,
            now: None,
        }
    }

    /// Judges expiry as if the time were `unix_secs` (tests).
    pub fn at_time(self, unix_secs: u64) -> TokenManager<'a> {
        TokenManager {
            now: Some(unix_secs),
            ..self
        }
    }

    pub fn store(&self) -> &TokenStore {
        self.store
    }

    pub fn host(&self) -> &Host {
        self.host
    }

    fn now(&self) -> u64 {
        self.now.unwrap_or_else(unix_now)
    }

    /// The connection's fields that identify what a token is for: all but the secret ones.
    pub fn binding(&self, connection: &Connection) -> BTreeMap<String, String> {
        let secret_keys = self.host.secret_keys(connection);
        connection
            .fields
            .iter()
            .filter(|(key, _)| !secret_keys.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.trim().to_string()))
            .collect()
    }

    /// The stored token of `key` when it was obtained for this very connection.
    pub fn stored(
        &self,
        key: &str,
        connection: &Connection,
    ) -> anyhow::Result<Option<StoredToken>> {
        let binding = self.binding(connection);
        Ok(self.store.get(key)?.filter(|stored| {
            stored.connection_type == connection.definition && stored.binding == binding
        }))
    }

    /// Stores a token just obtained for `connection`.
    pub fn remember(
        &self,
        key: &str,
        connection: &Connection,
        token: &Token,
    ) -> anyhow::Result<()> {
        let stored = StoredToken::new(connection, self.binding(connection), token, self.now());
        self.store.put(key, stored)
    }

    /// Puts a usable token on `connection`: a token already on it is kept as is; otherwise the
    /// stored one while fresh, else a refreshed or newly acquired one (stored).
    pub fn prepare(&self, key: &str, connection: &mut Connection) -> CallResult<()> {
        if connection.token.is_some() {
            return Ok(());
        }
        let now = self.now();
        match self.stored(key, connection).map_err(store_error)? {
            Some(stored) if !stored.needs_renewal(now) => {
                connection.token = Some(stored.token(now));
                Ok(())
            }
            Some(stored) => {
                connection.token = Some(stored.token(now));
                match self.renew(key, connection) {
                    // A token with a little time left beats failing on a passing outage.
                    Err(CallError::Connector(failure))
                        if failure.code != ErrorCode::Unauthenticated
                            && !stored.is_expired(now) =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            }
            None => self.renew(key, connection),
        }
    }

    /// Gets a new token for `connection` (refresh for auth code, acquire for the others),
    /// stores it and puts it on the connection. A refresh token the identity provider refused
    /// is forgotten, so `status` shows the connection needs a new sign-in.
    pub fn renew(&self, key: &str, connection: &mut Connection) -> CallResult<()> {
        if connection.definition == MANAGED_IDENTITY {
            let token = managed_identity_token(connection)?;
            self.remember(key, connection, &token)
                .map_err(store_error)?;
            connection.token = Some(token);
            return Ok(());
        }
        let auth_code =
            self.host.connection_kind(connection) == Some(ConnectionKind::Oauth2AuthorizationCode);
        let token = match self.host.renew_token(&with_host_assertion(connection)?) {
            Ok(Some(token)) => token,
            Err(CallError::Connector(failure)) => {
                if auth_code && failure.code == ErrorCode::Unauthenticated {
                    self.store.remove(key).map_err(store_error)?;
                }
                return Err(failure.into());
            }
            Err(error) => return Err(error),
            Ok(None) if auth_code => return Err(not_signed_in(connection.token.is_some()).into()),
            // An unknown connection type: the call itself reports it.
            Ok(None) => return Ok(()),
        };
        self.remember(key, connection, &token)
            .map_err(store_error)?;
        connection.token = Some(token);
        Ok(())
    }

    /// Runs an action with a fresh token; on `unauthenticated`, renews once and runs again.
    pub fn run_action(
        &self,
        key: &str,
        connection: &mut Connection,
        action: &str,
        input: &str,
    ) -> CallResult<String> {
        if connection.token.is_some() {
            // A token given with the connection is the caller's to manage.
            return self.host.run_action(action, connection, input);
        }
        self.prepare(key, connection)?;
        self.host
            .invoke_renewing(action, connection, input, |connection| {
                self.renew(key, connection).map(|()| true)
            })
    }

    /// The component's connection test with the stored (or a fresh) token.
    pub fn test_connection(&self, key: &str, connection: &mut Connection) -> CallResult<String> {
        if connection.token.is_none() {
            self.prepare(key, connection)?;
        }
        self.host.test_connection(connection)
    }
}

/// The connection as the component needs it to sign in: a federated credential's
/// `clientAssertion` read now from the file named in `clientAssertionFile` or the environment
/// variable named in `clientAssertionVariable` (Kubernetes workload identity rotates its token
/// file, CI OIDC tokens live minutes, so it is read at each sign-in and never stored). Other
/// connections are returned as they are. The host reads what the connection names; the
/// component, which can read no file or variable, only ever sees the token.
pub fn with_host_assertion(connection: &Connection) -> Result<Connection, ConnectorError> {
    let field = |key: &str| {
        connection
            .fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let refused = |key: &str, message: String| ConnectorError {
        code: ErrorCode::InvalidInput,
        message,
        http_status: None,
        service_code: None,
        retry_after_ms: None,
        hint: None,
        field: Some(key.to_string()),
    };
    let assertion = match (field("clientAssertionFile"), field("clientAssertionVariable")) {
        (Some(path), _) => fs::read_to_string(&path).map_err(|problem| {
            refused(
                "clientAssertionFile",
                format!("input \"clientAssertionFile\" (Assertion File): {path:?} could not be read: {problem}"),
            )
        })?,
        (None, Some(name)) => std::env::var(&name).map_err(|_| {
            refused(
                "clientAssertionVariable",
                format!("input \"clientAssertionVariable\" (Assertion Variable): the environment variable {name:?} is not set (or not UTF-8)"),
            )
        })?,
        (None, None) => return Ok(connection.clone()),
    };
    let assertion = assertion.trim().to_string();
    let mut filled = connection.clone();
    filled.fields.retain(|(key, _)| key != "clientAssertion");
    filled
        .fields
        .push(("clientAssertion".to_string(), assertion));
    Ok(filled)
}

/// The connection type whose token the host fetches itself.
pub const MANAGED_IDENTITY: &str = "managed-identity";

/// A managed identity's token for the environment of `connection`, fetched by the host from the
/// managed identity endpoint of where it runs; the component only ever gets the access token.
///
/// Microsoft Entra "managed identities for Azure resources": on App Service, Functions and
/// Container Apps the platform sets `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, asked with
/// `GET {IDENTITY_ENDPOINT}?resource=...&api-version=2019-08-01` and the header
/// `X-IDENTITY-HEADER` (<https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference>);
/// elsewhere (VMs, scale sets, AKS nodes) the Instance Metadata Service answers
/// `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
/// with the header `Metadata: true`
/// (<https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token>).
/// The connection's `identityEndpoint` names an endpoint of the IMDS kind instead (a local
/// token service, the emulator); `managedIdentityClientId` picks a user-assigned identity.
pub fn managed_identity_token(connection: &Connection) -> Result<Token, ConnectorError> {
    let field = |key: &str| {
        connection
            .fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let failure = |code: ErrorCode, message: String, field: Option<&str>| ConnectorError {
        code,
        message,
        http_status: None,
        service_code: None,
        retry_after_ms: None,
        hint: None,
        field: field.map(str::to_string),
    };
    let web_api_url = field("webApiUrl").unwrap_or_default();
    let resource = web_api_url
        .split_once("://")
        .and_then(|(scheme, rest)| {
            let authority = rest.split(['/', '?', '#']).next()?;
            (!authority.is_empty()).then(|| format!("{scheme}://{authority}").to_ascii_lowercase())
        })
        .ok_or_else(|| {
            failure(
                ErrorCode::InvalidInput,
                format!(
                    "input \"webApiUrl\" (Web API URL): {web_api_url:?} is not an absolute URL"
                ),
                Some("webApiUrl"),
            )
        })?;
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let platform = (
        std::env::var("IDENTITY_ENDPOINT").ok(),
        std::env::var("IDENTITY_HEADER").ok(),
    );
    let (endpoint, api_version, header) = match (field("identityEndpoint"), platform) {
        (Some(endpoint), _) => (endpoint, "2018-02-01", ("Metadata", "true".to_string())),
        (None, (Some(endpoint), Some(secret))) => {
            (endpoint, "2019-08-01", ("X-IDENTITY-HEADER", secret))
        }
        (None, _) => (
            "http://169.254.169.254/metadata/identity/oauth2/token".to_string(),
            "2018-02-01",
            ("Metadata", "true".to_string()),
        ),
    };
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let mut url = format!(
        "{endpoint}{separator}api-version={api_version}&resource={}",
        encode(&resource)
    );
    if let Some(client_id) = field("managedIdentityClientId") {
        url.push_str(&format!("&client_id={}", encode(&client_id)));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into();
    let unreachable = |problem: String| {
        let mut f = failure(
            ErrorCode::Unauthenticated,
            format!(
                "the managed identity endpoint {endpoint} could not be asked for a token: {problem}"
            ),
            None,
        );
        f.hint = Some("run on an Azure resource with a managed identity enabled (or name a token service in Identity Endpoint)".to_string());
        f
    };
    let mut response = agent
        .get(&url)
        .header(header.0, &header.1)
        .call()
        .map_err(|problem| unreachable(problem.to_string()))?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response
        .body_mut()
        .read_to_string()
        .map_err(|problem| problem.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|problem| problem.to_string()))
        .map_err(|problem| unreachable(format!("its answer is not JSON ({problem})")))?;
    let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let number = |key: &str| {
        body.get(key).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let Some(access_token) = text("access_token").filter(|_| status == 200) else {
        let mut f = failure(
            ErrorCode::Unauthenticated,
            format!(
                "the managed identity endpoint refused the token (HTTP {status}): {}",
                text("error_description")
                    .or_else(|| text("error"))
                    .unwrap_or_default()
            ),
            None,
        );
        f.http_status = Some(status);
        f.hint = Some("check that the identity is enabled on the resource, that Managed Identity Client ID names one assigned to it, and that it is an application user of the environment".to_string());
        return Err(f);
    };
    let expires_in = number("expires_in")
        .or_else(|| number("expires_on").map(|on| on.saturating_sub(unix_now())));
    Ok(Token {
        access_token,
        token_type: text("token_type").unwrap_or_else(|| "Bearer".to_string()),
        refresh_token: None,
        expires_in_secs: expires_in.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        scope: None,
    })
}

fn store_error(problem: anyhow::Error) -> HostError {
    HostError::Host(format!("{problem:#}"))
}

fn not_signed_in(had_token: bool) -> ConnectorError {
    let message = if had_token {
        "the stored token has expired and there is no refresh token to renew it"
    } else {
        "this connection is not signed in"
    };
    ConnectorError {
        code: ErrorCode::Unauthenticated,
        message: message.to_string(),
        http_status: None,
        service_code: None,
        retry_after_ms: None,
        hint: Some(
            "sign in with `dynamics login -c <connection file>` (include offline_access in the scopes to stay signed in)"
                .to_string(),
        ),
        field: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: Option<u32>) -> StoredToken {
        StoredToken {
            connection_type: "oauth2-auth-code".into(),
            binding: BTreeMap::new(),
            access_token: "access-secret".into(),
            token_type: "Bearer".into(),
            refresh_token: Some("refresh-secret".into()),
            scope: None,
            obtained_at: 1_000,
            expires_at: expires_in.map(|secs| 1_000 + u64::from(secs)),
        }
    }

    #[test]
    fn tokens_are_renewed_five_minutes_before_expiry_or_at_half_life_when_short() {
        let hour = token(Some(3600));
        assert!(!hour.needs_renewal(1_000 + 3600 - 301));
        assert!(hour.needs_renewal(1_000 + 3600 - 300));
        assert!(!hour.is_expired(1_000 + 3599));
        assert!(hour.is_expired(1_000 + 3600));
        let short = token(Some(60));
        assert!(!short.needs_renewal(1_029));
        assert!(short.needs_renewal(1_030));
        assert!(!token(None).needs_renewal(u64::MAX));
    }

    #[test]
    fn debug_output_never_shows_the_tokens() {
        let text = format!("{:?}", token(Some(1)));
        assert!(!text.contains("access-secret") && !text.contains("refresh-secret"));
    }

    #[test]
    fn utc_times_are_formatted_as_calendar_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }

    #[cfg(unix)]
    #[test]
    fn the_store_file_and_its_new_directory_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("token-store-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = TokenStore::open(dir.join("nested").join("tokens.json"));
        store.put("a", token(Some(10))).unwrap();
        let file_mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        let dir_mode = fs::metadata(dir.join("nested"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!((file_mode, dir_mode), (0o600, 0o700));
        assert_eq!(
            store.get("a").unwrap().unwrap().access_token,
            "access-secret"
        );
        assert!(store.remove("a").unwrap());
        assert!(store.get("a").unwrap().is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
