//! Running what the page asks for through the component: one action, a data source's choices,
//! an action's environment-given inputs, a flow.

use serde_json::{Value, json};

use dynamics_host::CallError;
use dynamics_host::tokens::TokenManager;

use super::Shared;
use super::api::{
    Answer, ChoicesRequest, InputDefinitionsRequest, RunFlow, connector_error, fail, host_error,
    parse_output, status_of,
};
use super::definition_view::inputs_json;
use super::flow::{self, Flow};

impl Shared {
    pub(super) fn run_action(
        &self,
        connection: &str,
        action: &str,
        input: &Value,
    ) -> Result<Value, Value> {
        let (key, mut connection) = self.connection(connection)?;
        let manager = TokenManager::new(&self.host, &self.store);
        match manager.run_action(&key, &mut connection, action, &input.to_string()) {
            Ok(text) => Ok(parse_output(text)),
            Err(CallError::Connector(error)) => Err(connector_error(&error)),
            Err(CallError::Host(error)) => Err(host_error(&error)),
        }
    }

    pub(super) fn choices(&self, body: ChoicesRequest) -> Answer {
        let (Some(name), Some(source)) = (body.connection, body.data_source) else {
            return fail(
                400,
                "invalid-input",
                "connection and dataSource are required",
                None,
            );
        };
        let connection = match self.prepared(&name) {
            Ok((_, connection)) => connection,
            Err(error) => return (status_of(&error), json!({ "error": error })),
        };
        match self
            .host
            .choices(&source, &connection, &body.input.to_string())
        {
            Ok(choices) => {
                let list: Vec<Value> = choices
                    .iter()
                    .map(|c| json!({"label": c.label, "value": c.value}))
                    .collect();
                (200, json!({ "choices": list }))
            }
            Err(CallError::Connector(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(CallError::Host(error)) => (500, json!({ "error": host_error(&error) })),
        }
    }

    pub(super) fn input_definitions(&self, body: InputDefinitionsRequest) -> Answer {
        let (Some(name), Some(action)) = (body.connection, body.action) else {
            return fail(
                400,
                "invalid-input",
                "connection and action are required",
                None,
            );
        };
        let connection = match self.prepared(&name) {
            Ok((_, connection)) => connection,
            Err(error) => return (status_of(&error), json!({ "error": error })),
        };
        match self
            .host
            .input_definitions(&action, &connection, &body.input.to_string())
        {
            Ok(inputs) => (200, json!({ "inputs": inputs_json(&inputs) })),
            Err(CallError::Connector(error)) => {
                let error = connector_error(&error);
                (status_of(&error), json!({ "error": error }))
            }
            Err(CallError::Host(error)) => (500, json!({ "error": host_error(&error) })),
        }
    }

    pub(super) fn parse_flow(&self, flow: Value) -> Result<Flow, Answer> {
        let flow: Flow = serde_json::from_value(flow).map_err(|problem| {
            fail(
                400,
                "invalid-input",
                format!("flow: {problem}"),
                Some("flow"),
            )
        })?;
        let actions: Vec<&str> = self
            .host
            .definition()
            .actions
            .iter()
            .map(|action| action.key.as_str())
            .collect();
        flow::check(&flow, &actions).map_err(|problem| {
            let field = problem.split(':').next().unwrap_or("flow").to_string();
            fail(400, "invalid-input", problem, Some(&field))
        })?;
        Ok(flow)
    }

    pub(super) fn run_flow(&self, body: RunFlow) -> Answer {
        let flow = match self.parse_flow(body.flow) {
            Ok(flow) => flow,
            Err(answer) => return answer,
        };
        let Some(connection) = body.connection.as_deref().or(flow.connection.as_deref()) else {
            return fail(
                400,
                "invalid-input",
                "connection: choose a connection for the flow",
                Some("connection"),
            );
        };
        if let Err(error) = self.connection(connection) {
            return (400, json!({ "error": error }));
        }
        let trigger = body.trigger.as_ref();
        let steps = flow::run(&flow, trigger, |action, input| {
            self.run_action(connection, action, input)
        });
        (200, json!({ "steps": steps }))
    }
}
