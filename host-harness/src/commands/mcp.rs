//! `dynamics mcp`: the component's actions as Model Context Protocol tools for AI agents, served
//! over stdio for one connection. The tools are generated from the action definitions when the
//! server starts ([`tools`]); `--read-only` and `--tables` limit what an agent may do
//! ([`policy`]). Every call goes through the same [`Host`] as `dynamics invoke`, so the sandbox
//! and its egress policy apply unchanged.
//!
//! stdout carries the protocol and nothing else: the host's log goes to stderr.

mod policy;
mod stdin;
mod tools;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use dynamics_host::{
    CallError, CallResult, Connection, ConnectorError, ErrorCode, Host, TokenManager, TokenStore,
    connection_file, describe_error,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, ErrorCode as McpErrorCode, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Map, Value, json};

use crate::commands::{Global, token_store};
use policy::{Policy, Refusal};
use tools::Tables;

#[derive(clap::Args)]
pub struct Args {
    /// The connection file every tool call runs with (JSON: type, fields, optional token).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub connection: PathBuf,
    /// Offer only the tools that change nothing; a call to any other is refused.
    #[arg(long)]
    pub read_only: bool,
    /// The tables (entity set names, comma-separated, such as accounts,contacts) the tools may
    /// touch. A tool call naming another table is refused before any request, as are paths
    /// into other tables (expand, navigation in filters, lookups to unlisted tables, deep
    /// inserts, FetchXML link-entities). Tools that could reach any table are not offered with
    /// a list: Raw Request, relating rows, bound and unbound actions, functions, and new table
    /// or relationship definitions.
    #[arg(long, value_name = "SETS")]
    pub tables: Option<String>,
    /// Let tool calls act as another user (Impersonate User Id, Impersonate Entra Object Id,
    /// and Raw Request's MSCRMCallerID and CallerObjectId headers). Without it those inputs
    /// are not offered and a call that gives them is refused: the connection's user may hold
    /// the privilege to act as anyone, an administrator included.
    #[arg(long)]
    pub allow_impersonation: bool,
}

impl Args {
    pub fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        let mut policy = Policy::new(self.read_only, self.tables.as_deref())?;
        policy.allow_impersonation = self.allow_impersonation;
        let named = connection_file::load_named(&self.connection)?;
        let host = global.host()?;
        let store = token_store(global.token_store.as_deref())?;
        let server = Server::new(host, store, named.key, named.connection, policy);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async move {
            let service = server
                .serve(
                    // rmcp's own bound is set above ours, so that every line over ours is
                    // answered by [`stdin`] rather than dropped by rmcp.
                    AsyncRwTransport::new_server(
                        stdin::front(tokio::io::stdin(), stdin::LIMIT),
                        tokio::io::stdout(),
                    )
                    .with_max_line_length(2 * stdin::LIMIT),
                )
                .await
                .context("starting the MCP session on stdio")?;
            service.waiting().await.context("serving MCP on stdio")?;
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// One action as a tool, with what decides whether and how it may be called.
struct Entry {
    tool: Tool,
    tables: Tables,
    /// Why the policy does not offer it.
    hidden: Option<&'static str>,
}

/// The MCP server of one connection.
pub struct Server {
    host: Arc<Host>,
    store: Arc<TokenStore>,
    connection_key: String,
    connection: Connection,
    policy: Policy,
    entries: Vec<Entry>,
    /// The logical names of the listed tables, once read.
    logical: tokio::sync::Mutex<Option<BTreeSet<String>>>,
    /// Calls running at once. rmcp serves requests concurrently and each call holds a
    /// component instance (up to the host's memory limit) on a blocking thread: an agent
    /// firing hundreds of calls at once would otherwise take that many times the memory.
    running: tokio::sync::Semaphore,
}

/// How many tool calls run at once; the others wait their turn.
const CONCURRENT_CALLS: usize = 4;

impl Server {
    fn new(
        host: Host,
        store: TokenStore,
        connection_key: String,
        connection: Connection,
        policy: Policy,
    ) -> Server {
        let entries = host
            .definition()
            .actions
            .iter()
            .map(|action| {
                let (effect, tables, known) = tools::classify(&action.key);
                if !known {
                    eprintln!(
                        "warning: action {:?} is not classified for MCP; it is offered as one that may change anything",
                        action.key
                    );
                }
                let mut tool = tools::tool(action, effect);
                if !policy.allow_impersonation {
                    tools::leave_out_inputs(&mut tool, &policy::IMPERSONATION_INPUTS);
                }
                Entry {
                    tool,
                    tables,
                    hidden: policy.hides(effect, tables),
                }
            })
            .collect();
        Server {
            host: Arc::new(host),
            store: Arc::new(store),
            connection_key,
            connection,
            policy,
            entries,
            logical: tokio::sync::Mutex::new(None),
            running: tokio::sync::Semaphore::new(CONCURRENT_CALLS),
        }
    }

    /// The tools an agent is offered.
    fn offered(&self) -> Vec<Tool> {
        self.entries
            .iter()
            .filter(|entry| entry.hidden.is_none())
            .map(|entry| entry.tool.clone())
            .collect()
    }

    /// Runs a tool call: the policy first, then the action through the host (blocking, so on
    /// a thread of its own).
    async fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, McpError> {
        let Some(entry) = self.entries.iter().find(|entry| entry.tool.name == name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            ));
        };
        if let Some(reason) = entry.hidden {
            return Ok(refused(Refusal {
                field: None,
                message: format!("tool {name:?} is not available: {reason}"),
            }));
        }
        if arguments.contains_key("connection") {
            return Ok(failed(&ConnectorError {
                code: ErrorCode::InvalidInput,
                message: "the connection is not a tool input: the server runs every call with its own connection".to_string(),
                http_status: None,
                service_code: None,
                retry_after_ms: None,
                hint: Some("leave connection out of the arguments".to_string()),
                field: Some("connection".to_string()),
            }));
        }
        if let Err(refusal) = self.policy.check_impersonation(name, &arguments) {
            return Ok(refused(refusal));
        }
        let logical = if self.policy.tables.is_some() && entry.tables.needs_logical_names() {
            match self.logical_names().await? {
                Ok(names) => names,
                Err(result) => return Ok(result),
            }
        } else {
            BTreeSet::new()
        };
        if let Err(refusal) = self.policy.check_tables(entry.tables, &arguments, &logical) {
            return Ok(refused(refusal));
        }
        Ok(
            match self.run(name, Value::Object(arguments).to_string()).await? {
                Ok(output) => succeeded(output),
                Err(error) => call_failed(error),
            },
        )
    }

    /// The logical names of the listed tables (definitions and FetchXML name tables so), read
    /// once from the environment's table list and kept; a failure is not kept, so the next
    /// call tries again.
    async fn logical_names(&self) -> Result<Result<BTreeSet<String>, CallToolResult>, McpError> {
        let mut known = self.logical.lock().await;
        if let Some(names) = &*known {
            return Ok(Ok(names.clone()));
        }
        let Some(allowed) = &self.policy.tables else {
            return Ok(Ok(BTreeSet::new()));
        };
        let output = match self.run(LIST_TABLES, "{}".to_string()).await? {
            Ok(output) => output,
            Err(error) => return Ok(Err(call_failed(error))),
        };
        let Some(entities) = serde_json::from_str::<Value>(&output)
            .ok()
            .and_then(|value| value.get("entities").and_then(Value::as_array).cloned())
        else {
            return Ok(Err(failed(&ConnectorError {
                code: ErrorCode::MalformedResponse,
                message: format!(
                    "{LIST_TABLES} answered without a list of entities, so the logical names of the listed tables are unknown"
                ),
                http_status: None,
                service_code: None,
                retry_after_ms: None,
                hint: None,
                field: None,
            })));
        };
        let names: BTreeSet<String> = entities
            .iter()
            .filter(|entity| {
                entity["entitySetName"]
                    .as_str()
                    .is_some_and(|set| allowed.contains(&set.to_ascii_lowercase()))
            })
            .filter_map(|entity| entity["logicalName"].as_str().map(str::to_ascii_lowercase))
            .collect();
        *known = Some(names.clone());
        Ok(Ok(names))
    }

    /// Runs an action with the server's connection, on a blocking thread (the host's calls
    /// block).
    async fn run(&self, action: &str, input: String) -> Result<CallResult<String>, McpError> {
        let host = self.host.clone();
        let store = self.store.clone();
        let key = self.connection_key.clone();
        // Each call starts from the connection as configured; the token store keeps the token.
        let mut connection = self.connection.clone();
        let action = action.to_string();
        // The semaphore is never closed, so acquiring only waits.
        let _turn = self.running.acquire().await.map_err(|problem| {
            McpError::internal_error(format!("the call could not start: {problem}"), None)
        })?;
        tokio::task::spawn_blocking(move || {
            TokenManager::new(&host, &store).run_action(&key, &mut connection, &action, &input)
        })
        .await
        .map_err(|problem| McpError::internal_error(format!("the call stopped: {problem}"), None))
    }
}

/// The action that lists the environment's tables with their entity set and logical names.
const LIST_TABLES: &str = "list-entities";

/// A failed call as a tool result: the component's error as it is, the host's (a limit, a
/// trap) with its message.
fn call_failed(error: CallError) -> CallToolResult {
    match error {
        CallError::Connector(failure) => failed(&failure),
        CallError::Host(problem) => {
            let message = problem.to_string();
            let mut result =
                CallToolResult::error(vec![ContentBlock::text(format!("host: {message}"))]);
            result.structured_content =
                Some(json!({"error": {"code": "host", "message": message}}));
            result
        }
    }
}

/// An action's output: the JSON as text, and as structured content when it is an object (the
/// only shape MCP allows there).
fn succeeded(output: String) -> CallToolResult {
    let structured = serde_json::from_str::<Value>(&output)
        .ok()
        .filter(Value::is_object);
    let mut result = CallToolResult::success(vec![ContentBlock::text(output)]);
    result.structured_content = structured;
    result
}

/// The component's error as a tool result an agent can read and act on. Connector errors hold
/// no secret, and nothing is added here that could.
fn failed(error: &ConnectorError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(describe_error(error))]);
    result.structured_content = Some(json!({"error": {
        "code": error.code.to_string(),
        "message": error.message,
        "field": error.field,
        "hint": error.hint,
        "httpStatus": error.http_status,
        "serviceCode": error.service_code,
        "retryAfterMs": error.retry_after_ms,
    }}));
    result
}

fn refused(refusal: Refusal) -> CallToolResult {
    failed(&ConnectorError {
        code: ErrorCode::Forbidden,
        message: refusal.message,
        http_status: None,
        service_code: None,
        retry_after_ms: None,
        hint: Some(
            "this MCP server limits its tools (--read-only, --tables, or no --allow-impersonation); ask for a server without the limit"
                .to_string(),
        ),
        field: refusal.field,
    })
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut instructions = String::from(
            "Microsoft Dynamics 365 / Dataverse actions for one connection. Table names are entity set names (accounts, contacts).",
        );
        if self.policy.read_only {
            instructions.push_str(" Read-only: tools that change data are not offered.");
        }
        if !self.policy.allow_impersonation {
            instructions
                .push_str(" Calls act as the connection's own user: impersonation is not allowed.");
        }
        if let Some(tables) = &self.policy.tables {
            let list: Vec<&str> = tables.iter().map(String::as_str).collect();
            instructions.push_str(&format!(" Only these tables: {}.", list.join(", ")));
        }
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("dynamics", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.offered()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        Ok(self.call(&request.name, arguments).await?.into())
    }

    /// The stand-in for a message over the input's limit ([`stdin`]) is answered with an error
    /// naming the limit; other methods are not known.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        if request.method != stdin::OVERSIZED {
            return Err(McpError::new(
                McpErrorCode::METHOD_NOT_FOUND,
                request.method,
                None,
            ));
        }
        let bytes = request.params.as_ref().and_then(|p| p["bytes"].as_u64());
        Err(McpError::invalid_request(
            format!(
                "the message{} is over this server's limit of {} bytes ({} MiB) a message: it was not read, and nothing was done",
                bytes.map(|b| format!(" of {b} bytes")).unwrap_or_default(),
                stdin::LIMIT,
                stdin::LIMIT >> 20
            ),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamics_host::HostConfig;

    fn host() -> Host {
        Host::builtin(HostConfig::default()).unwrap()
    }

    #[test]
    fn every_action_of_the_component_is_classified() {
        let host = host();
        let unclassified: Vec<&str> = host
            .definition()
            .actions
            .iter()
            .map(|action| action.key.as_str())
            .filter(|key| !tools::classify(key).2)
            .collect();
        assert!(
            unclassified.is_empty(),
            "add these actions to tools::CLASSES: {unclassified:?}"
        );
    }

    #[test]
    fn tool_names_are_valid_mcp_names_and_schemas_leave_out_the_connection() {
        let host = host();
        for action in &host.definition().actions {
            let (effect, _, _) = tools::classify(&action.key);
            let tool = tools::tool(action, effect);
            assert!(
                (1..=128).contains(&tool.name.len())
                    && tool
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
                "{} is not a valid tool name",
                tool.name
            );
            assert!(
                !tool.input_schema["properties"]
                    .as_object()
                    .unwrap()
                    .contains_key("connection")
            );
        }
    }

    fn server(policy: Policy) -> Server {
        let connection = Connection {
            definition: "oauth2-client-credentials".into(),
            // A loopback address no policy allows: a call that got past the checks would fail
            // at the egress policy, not reach anything.
            fields: vec![("webApiUrl".into(), "https://127.0.0.1:9".into())],
            // A token of its own: no sign-in is tried before the component checks the input.
            token: Some(dynamics_host::Token {
                access_token: "test-token".into(),
                token_type: "Bearer".into(),
                refresh_token: None,
                expires_in_secs: Some(3600),
                scope: None,
            }),
        };
        let store = TokenStore::open(std::env::temp_dir().join("dynamics-mcp-test-tokens.json"));
        Server::new(host(), store, "test".into(), connection, policy)
    }

    fn names(server: &Server) -> Vec<String> {
        server
            .offered()
            .iter()
            .map(|tool| tool.name.to_string())
            .collect()
    }

    fn error_of(result: &CallToolResult) -> &Value {
        assert_eq!(result.is_error, Some(true));
        &result.structured_content.as_ref().unwrap()["error"]
    }

    #[tokio::test]
    async fn read_only_lists_only_reads_and_refuses_a_write_by_name() {
        let server = server(Policy::new(true, None).unwrap());
        let names = names(&server);
        assert!(names.contains(&"query-entities".to_string()));
        assert!(!names.contains(&"create-entity".to_string()));
        assert!(!names.iter().any(|name| name.starts_with("raw-request")));
        let result = server
            .call(
                "create-entity",
                json!({"entityType": "accounts"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .await
            .unwrap();
        let error = error_of(&result);
        assert_eq!(error["code"], json!("forbidden"));
        assert!(error["message"].as_str().unwrap().contains("--read-only"));
    }

    #[tokio::test]
    async fn read_only_refuses_functions_whose_plug_ins_may_write() {
        // A custom API marked as a function runs its plug-in on GET like any other message,
        // and CalculateRollupField, a built-in function, stores the value it computes.
        let server = server(Policy::new(true, None).unwrap());
        assert!(!names(&server).contains(&"call-function".to_string()));
        let result = server
            .call(
                "call-function",
                json!({"functionName": "CalculateRollupField"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .await
            .unwrap();
        assert_eq!(error_of(&result)["code"], json!("forbidden"));
    }

    #[tokio::test]
    async fn a_table_list_hides_raw_requests_and_refuses_other_tables() {
        let server = server(Policy::new(false, Some("accounts")).unwrap());
        let names = names(&server);
        assert!(names.contains(&"create-entity".to_string()));
        assert!(!names.iter().any(|name| name.starts_with("raw-request")));
        assert!(!names.contains(&"perform-unbound-action".to_string()));
        // Checkable with the tables' logical names, read from the environment when needed.
        assert!(names.contains(&"run-fetch-xml-query".to_string()));
        let result = server
            .call(
                "query-entities",
                json!({"entityType": "contacts"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .await
            .unwrap();
        let error = error_of(&result);
        assert_eq!(error["field"], json!("entityType"));
        assert!(error["message"].as_str().unwrap().contains("\"contacts\""));
    }

    #[tokio::test]
    async fn the_connection_is_not_an_argument_and_an_unknown_tool_is_a_protocol_error() {
        let server = server(Policy::default());
        let result = server
            .call(
                "get-current-user",
                json!({"connection": "x"}).as_object().unwrap().clone(),
            )
            .await
            .unwrap();
        assert_eq!(error_of(&result)["field"], json!("connection"));
        assert!(server.call("no-such-tool", Map::new()).await.is_err());
    }

    #[tokio::test]
    async fn only_a_few_calls_run_at_once_and_the_others_wait_their_turn() {
        let server = server(Policy::default());
        let call = || server.call("get-current-user", Map::new());
        let taken = server
            .running
            .acquire_many(CONCURRENT_CALLS as u32)
            .await
            .unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(300), call()).await;
        assert!(waiting.is_err(), "a call ran with every turn taken");
        drop(taken);
        let result = tokio::time::timeout(std::time::Duration::from_secs(60), call())
            .await
            .expect("a call waited with turns free")
            .unwrap();
        // The test connection names an address the egress policy refuses: an error, but run.
        assert_eq!(result.is_error, Some(true));
    }

    #[tokio::test]
    async fn impersonation_is_neither_offered_nor_taken_unless_allowed() {
        let server_of = server;
        let server = server_of(Policy::default());
        for tool in server.offered() {
            let properties = tool.input_schema["properties"].as_object().unwrap();
            for key in policy::IMPERSONATION_INPUTS {
                assert!(!properties.contains_key(key), "{} offers {key}", tool.name);
            }
        }
        let args = |value: Value| value.as_object().unwrap().clone();
        let user = "00000000-0000-0000-0000-000000000001";
        let attempts = [
            (
                "query-entities",
                args(json!({"entityType": "accounts", "impersonateUserId": user})),
            ),
            (
                "create-entity",
                args(json!({"entityType": "accounts", "impersonateObjectId": user})),
            ),
            // Present at all, even empty, is refused: what counts as empty is the component's.
            (
                "batch-entity-actions",
                args(json!({"batchActions": [], "impersonateUserId": ""})),
            ),
            (
                "raw-request",
                args(json!({"method": "GET", "url": "WhoAmI", "headers": {"mscrmcallerid": user}})),
            ),
            (
                "raw-request",
                args(
                    json!({"method": "GET", "url": "WhoAmI", "headers": [{"key": " CallerObjectId ", "value": user}]}),
                ),
            ),
            (
                "raw-request",
                args(
                    json!({"method": "GET", "url": "WhoAmI", "headers": "{\"MSCRM\\u0043allerID\": \"x\"}"}),
                ),
            ),
            // A $batch carries headers per request inside its body.
            (
                "raw-request",
                args(json!({"method": "POST", "url": "/api/data/v9.2/%24BATCH", "data": "--b"})),
            ),
        ];
        for (tool, arguments) in attempts {
            let result = server.call(tool, arguments.clone()).await.unwrap();
            let error = error_of(&result);
            assert_eq!(error["code"], json!("forbidden"), "{tool} {arguments:?}");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("--allow-impersonation"),
                "{error}"
            );
        }

        // Allowed, the inputs are offered and the call goes on to the component (whose own
        // checks answer here: the test connection reaches nothing).
        let allowing = server_of(Policy {
            allow_impersonation: true,
            ..Policy::default()
        });
        let query = allowing
            .offered()
            .into_iter()
            .find(|tool| tool.name == "query-entities")
            .unwrap();
        assert!(
            query.input_schema["properties"]
                .as_object()
                .unwrap()
                .contains_key("impersonateUserId")
        );
        let result = allowing
            .call(
                "query-entities",
                args(json!({"entityType": "accounts", "impersonateUserId": user, "impersonateObjectId": user})),
            )
            .await
            .unwrap();
        let error = error_of(&result);
        assert_ne!(error["code"], json!("forbidden"), "{error}");
        assert!(
            !error["message"]
                .as_str()
                .unwrap()
                .contains("--allow-impersonation")
        );
    }

    #[tokio::test]
    async fn bad_input_comes_back_as_a_tool_error_naming_the_field() {
        let server = server(Policy::default());
        let result = server
            .call(
                "query-entities",
                json!({"entityType": "accounts", "recordsPerPage": "many"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .await
            .unwrap();
        assert_eq!(error_of(&result)["field"], json!("recordsPerPage"));
    }
}
