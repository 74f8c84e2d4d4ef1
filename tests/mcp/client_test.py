"""Drives `dynamics mcp` with the official MCP Python SDK, as an agent host would.

Started by tests/mcp/run.sh, which sets EMULATOR_URL, EMULATOR_TOKEN_URL, EMULATOR_CLIENT_ID,
EMULATOR_CLIENT_SECRET, EMULATOR_ADMIN_KEY and DYNAMICS_BIN. Every check prints one line; the
script exits non-zero when any fails.
"""

import asyncio
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

from mcp import Client, StdioServerParameters

EMULATOR_URL = os.environ["EMULATOR_URL"]
ADMIN_KEY = os.environ["EMULATOR_ADMIN_KEY"]
DYNAMICS = os.environ["DYNAMICS_BIN"]

failures: list[str] = []
passed = 0


def check(condition: bool, what: str, detail: object = "") -> bool:
    global passed
    if condition:
        passed += 1
        print(f"ok   - {what}")
    else:
        failures.append(what)
        print(f"FAIL - {what}" + (f": {detail}" if detail != "" else ""))
    return condition


def admin(path: str) -> dict:
    """The emulator's admin API: the judge of what the calls did."""
    request = urllib.request.Request(
        f"{EMULATOR_URL}/_admin/{path}", headers={"X-Emulator-Admin-Key": ADMIN_KEY}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def rows_named(name: str) -> list[dict]:
    table = admin("tables/accounts")
    return [row for row in table["value"] if row.get("name") == name]


def last_request_seq() -> int:
    log = admin("requests")
    return max((entry.get("seq", 0) for entry in log["requests"]), default=0)


def server(work: str, *flags: str) -> Client:
    """A client session with `dynamics mcp` started with `flags` for the emulator's connection."""
    args = [
        "--allow-private",
        "--token-store",
        os.path.join(work, "tokens.json"),
        "mcp",
        "-c",
        os.path.join(work, "connection.json"),
        *flags,
    ]
    return Client(StdioServerParameters(command=DYNAMICS, args=args), read_timeout_seconds=120)


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def error_of(result) -> dict:
    content = result.structured_content or {}
    return content.get("error") or {}


async def full_server(work: str) -> None:
    async with server(work) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        check(
            {"query-entities", "create-entity", "delete-entity", "raw-request"} <= tools.keys(),
            "the tools include the catalogue's actions",
            sorted(tools),
        )
        check(
            all(re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name) for name in tools),
            "every tool name is a valid MCP tool name",
        )
        create = tools["create-entity"]
        schema = create.input_schema
        check(schema.get("type") == "object", "create-entity's input schema is an object schema")
        check(
            "connection" not in schema.get("properties", {}),
            "the connection is not a tool input",
        )
        check(
            schema["properties"].get("entityType", {}).get("type") == "string"
            and "entityType" in schema.get("required", []),
            "entityType is a required string",
            schema["properties"].get("entityType"),
        )
        check(
            schema["properties"].get("fieldValues", {}).get("type") == "object",
            "fieldValues is an object of column values",
            schema["properties"].get("fieldValues"),
        )
        check(
            schema["properties"].get("returnRepresentation", {}).get("type") == "boolean"
            and schema["properties"]["returnRepresentation"].get("default") is False,
            "a boolean input has its typed default",
        )
        upsert_mode = tools["upsert-entity"].input_schema["properties"].get("upsertMode", {})
        check(
            upsert_mode.get("enum") == ["upsert", "createOnly", "updateOnly"],
            "a picklist's fixed choices become an enum",
            upsert_mode,
        )
        query = tools["query-entities"]
        check(
            query.input_schema["properties"].get("fieldNames", {}).get("type") == "array"
            and query.input_schema["properties"]["fieldNames"].get("items") == {"type": "string"}
            and query.input_schema["properties"]["fieldNames"].get("title") == "Field Name"
            and query.input_schema["properties"]["fieldNames"]
            .get("description", "")
            .startswith("The names of the fields to retrieve"),
            "a string list is an array of strings with its label and comment",
            query.input_schema["properties"].get("fieldNames"),
        )
        check(
            query.annotations is not None
            and query.annotations.read_only_hint is True
            and query.annotations.open_world_hint is False,
            "query-entities is annotated read-only",
            query.annotations,
        )
        check(
            create.annotations is not None
            and create.annotations.read_only_hint is False
            and create.annotations.destructive_hint is False
            and create.annotations.idempotent_hint is False,
            "create-entity is annotated as an additive write",
            create.annotations,
        )
        delete = tools["delete-entity"].annotations
        check(
            delete is not None and delete.destructive_hint is True and delete.read_only_hint is False,
            "delete-entity is annotated destructive",
            delete,
        )
        check(create.title == "Create Entity", "the tool's title is the action's label", create.title)

        result = await client.call_tool(
            "query-entities",
            {"entityType": "accounts", "fieldNames": ["name", "accountid"], "recordsPerPage": 3},
        )
        listed = (result.structured_content or {}).get("records")
        check(
            not result.is_error and isinstance(listed, list) and 0 < len(listed) <= 3,
            "Query Entities returns the emulator's accounts",
            text_of(result)[:500],
        )
        check(
            json.loads(text_of(result)) == result.structured_content,
            "the text content is the same JSON as the structured content",
        )

        name = f"MCP Agent Co {uuid.uuid4()}"
        key = f"mcp-e2e-{uuid.uuid4()}"
        arguments = {
            "entityType": "accounts",
            "fieldValues": {"name": name, "revenue": 1250},
            "idempotencyKey": key,
        }
        result = await client.call_tool("create-entity", arguments)
        check(not result.is_error, "Create Entity succeeds", text_of(result)[:500])
        created = rows_named(name)
        check(
            len(created) == 1 and float(created[0].get("revenue") or 0) == 1250,
            "the created account is in the emulator's table with its values",
            created,
        )
        result = await client.call_tool(
            "query-entities",
            {"entityType": "accounts", "filterExpression": f"name eq '{name}'", "fieldNames": ["name"]},
        )
        found = (result.structured_content or {}).get("records") or []
        check(
            not result.is_error and [row.get("name") for row in found] == [name],
            "a second Query Entities finds the created account",
            text_of(result)[:500],
        )
        result = await client.call_tool("create-entity", arguments)
        check(
            not result.is_error and len(rows_named(name)) == 1,
            "calling Create Entity again with the same idempotency key makes no second row",
            text_of(result)[:500],
        )

        before = last_request_seq()
        result = await client.call_tool(
            "query-entities", {"entityType": "accounts", "recordsPerPage": "many"}
        )
        error = error_of(result)
        check(
            result.is_error and error.get("field") == "recordsPerPage" and "recordsPerPage" in text_of(result),
            "bad input comes back as isError naming the field",
            text_of(result),
        )
        check(last_request_seq() == before, "bad input makes no request to the environment")
        check(
            EMULATOR_CLIENT_SECRET_TEXT not in text_of(result),
            "the error does not carry the client secret",
        )


async def read_only_server(work: str) -> None:
    async with server(work, "--read-only") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        check("query-entities" in tools, "--read-only still offers Query Entities")
        check(
            "create-entity" not in tools and not any(name.startswith("raw-request") for name in tools),
            "--read-only hides Create Entity and Raw Request",
            sorted(tools),
        )
        check(
            "call-function" not in tools,
            "--read-only hides Call a Function (a custom API function's plug-in may write)",
            sorted(tools),
        )
        check(
            all(tool.annotations and tool.annotations.read_only_hint for tool in tools.values()),
            "--read-only lists only read-only tools",
        )
        name = f"MCP Read Only {uuid.uuid4()}"
        result = await client.call_tool(
            "create-entity", {"entityType": "accounts", "fieldValues": {"name": name}}
        )
        check(
            result.is_error and "--read-only" in text_of(result),
            "--read-only refuses Create Entity called by name",
            text_of(result),
        )
        check(rows_named(name) == [], "the refused create made no row")


async def tables_server(work: str) -> None:
    async with server(work, "--tables", "accounts") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        check(
            not any(name.startswith("raw-request") for name in tools)
            and "perform-unbound-action" not in tools
            and "run-fetch-xml-query" in tools,
            "--tables hides Raw Request and the messages, which could reach any table",
            sorted(tools),
        )
        check("create-entity" in tools, "--tables still offers Create Entity")
        before = last_request_seq()
        result = await client.call_tool("query-entities", {"entityType": "contacts"})
        error = error_of(result)
        check(
            result.is_error and error.get("field") == "entityType" and "contacts" in error.get("message", ""),
            "--tables accounts refuses a query of contacts, naming entityType",
            text_of(result),
        )
        result = await client.call_tool(
            "query-entities", {"entityType": "accounts", "expand": ["primarycontactid"]}
        )
        check(
            result.is_error and error_of(result).get("field") == "expand",
            "--tables refuses an expand into another table",
            text_of(result),
        )
        check(last_request_seq() == before, "the refused calls made no request")
        result = await client.call_tool(
            "query-entities", {"entityType": "accounts", "recordsPerPage": 1}
        )
        check(not result.is_error, "--tables accounts allows a query of accounts", text_of(result)[:300])
        next_page = (result.structured_content or {}).get("nextPageId")
        result = await client.call_tool(
            "query-entities", {"entityType": "accounts", "recordsPerPage": 1, "nextPageId": next_page}
        )
        check(
            bool(next_page) and not result.is_error and len((result.structured_content or {}).get("records") or []) == 1,
            "--tables accounts follows the next page of accounts",
            text_of(result)[:300],
        )

        # A link of a listed set may carry nothing that reads another table: not a FetchXML
        # query (the Web API runs one given as fetchXml on any entity set), nor a binding in
        # another spelling or as a list.
        before = last_request_seq()
        fetch_link = f"{EMULATOR_URL}/api/data/v9.2/accounts?fetchXml=" + urllib.parse.quote(
            '<fetch><entity name="account"><link-entity name="contact" from="contactid" '
            'to="primarycontactid"><attribute name="fullname"/></link-entity></entity></fetch>'
        )
        result = await client.call_tool(
            "query-entities", {"entityType": "accounts", "nextPageId": fetch_link}
        )
        check(
            result.is_error and error_of(result).get("field") == "nextPageId",
            "--tables accounts refuses a next page link that carries a FetchXML query",
            text_of(result),
        )
        contact = "/contacts(00000000-0000-0000-0000-000000000001)"
        for values in (
            {"name": "x", "primarycontactid@OData.Bind": contact},
            {"name": "x", "contact_customer_accounts@odata.bind": [contact]},
            {"name": "x", "parentaccountid@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)/primarycontactid"},
        ):
            result = await client.call_tool(
                "create-entity", {"entityType": "accounts", "fieldValues": values}
            )
            check(
                result.is_error and error_of(result).get("field") == "fieldValues",
                "--tables accounts refuses the binding "
                + next(repr(key) for key in values if "@" in key),
                text_of(result),
            )
        check(last_request_seq() == before, "the refused links and bindings made no request")

        # Definitions and FetchXML name tables by logical name: the server reads the listed
        # tables' logical names from the environment once, then checks them.
        result = await client.call_tool("get-entity-metadata", {"entityType": "account"})
        check(
            not result.is_error and (result.structured_content or {}).get("LogicalName") == "account",
            "--tables accounts allows the definition of account, by logical name",
            text_of(result)[:300],
        )
        before = last_request_seq()
        result = await client.call_tool("get-entity-metadata", {"entityType": "contact"})
        check(
            result.is_error and error_of(result).get("field") == "entityType",
            "--tables accounts refuses the definition of contact",
            text_of(result),
        )
        fetch = (
            '<fetch top="2"><entity name="account"><attribute name="name"/>'
            '<link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer">'
            '<attribute name="fullname"/></link-entity></entity></fetch>'
        )
        result = await client.call_tool(
            "run-fetch-xml-query", {"entityType": "accounts", "xmlQuery": fetch}
        )
        check(
            result.is_error and error_of(result).get("field") == "xmlQuery" and "contact" in text_of(result),
            "--tables accounts refuses a FetchXML query that links to contact",
            text_of(result),
        )
        check(last_request_seq() == before, "those refusals made no request")
        result = await client.call_tool(
            "run-fetch-xml-query",
            {
                "entityType": "accounts",
                "xmlQuery": '<fetch top="2"><entity name="account"><attribute name="name"/></entity></fetch>',
            },
        )
        check(
            not result.is_error,
            "--tables accounts allows a FetchXML query of account alone",
            text_of(result)[:300],
        )


def end_session(process: "subprocess.Popen[bytes]") -> None:
    """Closes a raw session's stdin, which ends the server; killed if it has not ended in 30 s."""
    process.stdin.close()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def raw_session(work: str, *flags: str) -> "subprocess.Popen[bytes]":
    """`dynamics mcp` on pipes, spoken to line by line without an SDK: a hostile client."""
    args = [
        DYNAMICS,
        "--allow-private",
        "--token-store",
        os.path.join(work, "tokens.json"),
        "mcp",
        "-c",
        os.path.join(work, "connection.json"),
        *flags,
    ]
    stderr = open(os.path.join(work, "raw-stderr.log"), "wb")
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)


def send(process, message) -> None:
    line = message if isinstance(message, bytes) else json.dumps(message).encode()
    process.stdin.write(line + b"\n")
    process.stdin.flush()


def answer(process, wanted_id, timeout: float = 60) -> dict | None:
    """The response with id `wanted_id`, skipping notifications; None when the server closed
    stdout or said nothing in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        line = process.stdout.readline()
        if not line:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("id") == wanted_id:
            return message
    return None


async def impersonation(work: str) -> None:
    """Calls act as the connection's own user unless the server is started with
    --allow-impersonation."""
    async with server(work) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        check(
            not any(
                "impersonateUserId" in tool.input_schema.get("properties", {})
                for tool in tools.values()
            ),
            "without --allow-impersonation no tool offers Impersonate User Id",
        )
        result = await client.call_tool(
            "query-entities",
            {"entityType": "accounts", "impersonateUserId": str(uuid.uuid4())},
        )
        check(
            result.is_error and "--allow-impersonation" in text_of(result),
            "without --allow-impersonation a call acting as another user is refused",
            text_of(result)[:300],
        )
    async with server(work, "--allow-impersonation") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        check(
            "impersonateUserId" in tools["query-entities"].input_schema.get("properties", {}),
            "with --allow-impersonation Query Entities offers Impersonate User Id",
        )
        me = json.loads(text_of(await client.call_tool("get-current-user", {})))
        result = await client.call_tool(
            "query-entities",
            {"entityType": "accounts", "impersonateUserId": me["userId"]},
        )
        check(
            not result.is_error,
            "with --allow-impersonation a query acting as a user of the environment runs",
            text_of(result)[:300],
        )


async def hostile_protocol(work: str) -> None:
    """Malformed JSON-RPC, unknown tools, arguments of the wrong type, deep nesting and a huge
    argument: each gets an error (or is dropped) and the server keeps serving; the client
    secret appears neither in what it answers nor on stderr."""
    process = raw_session(work, "--tables", "accounts")
    seen = []
    try:
        send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "0"}}})
        reply = answer(process, 1)
        seen.append(json.dumps(reply))
        check(reply is not None and "result" in reply, "the raw session initializes", reply)
        send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})

        def still_serving(after: str, request_id: int) -> None:
            send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"})
            reply = answer(process, request_id)
            seen.append(json.dumps(reply))
            check(
                reply is not None and bool(reply.get("result", {}).get("tools")),
                f"the server still lists its tools after {after}",
                reply,
            )

        send(process, b"{this is not json")
        still_serving("a line that is not JSON", 2)
        send(process, b'{"jsonrpc": "2.0", "id": 3, "method": 42}')
        still_serving("a method that is not text", 4)
        calls = [
            ("a tool that does not exist", {"name": "launch-rockets", "arguments": {}}),
            ("arguments that are a list", {"name": "query-entities", "arguments": ["accounts"]}),
            ("a tool name that is a number", {"name": 7, "arguments": {}}),
            ("an input of the wrong type", {"name": "query-entities",
                                            "arguments": {"entityType": {"set": "accounts"}}}),
        ]
        request_id = 10
        for what, params in calls:
            send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
            reply = answer(process, request_id)
            seen.append(json.dumps(reply))
            check(
                reply is not None and ("error" in reply or reply.get("result", {}).get("isError") is True),
                f"{what} is answered with an error",
                reply,
            )
            still_serving(what, request_id + 1)
            request_id += 2
        deep = "[" * 100_000 + "]" * 100_000
        line = ('{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": '
                '"create-entity", "arguments": {"entityType": "accounts", "dynamicValues": %s}}}'
                % (request_id, deep)).encode()
        send(process, line)
        # Past serde_json's nesting limit the line is not JSON to rmcp, which ignores it as the
        # other MCP SDKs do (there is no id to answer): the server must just keep serving.
        still_serving("arguments nested 100,000 deep", request_id + 1)
        request_id += 2
        # Just under the limit the call reaches the server, and is answered.
        nested = {"entityType": "accounts", "fieldValues": {"name": "deep"}}
        for _ in range(120):
            nested = {"a": nested}
        send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
            "name": "create-entity", "arguments": {"entityType": "accounts", "dynamicValues": nested}}})
        reply = answer(process, request_id)
        check(
            reply is not None and ("error" in reply or reply.get("result", {}).get("isError") is True),
            "arguments nested 120 deep are answered with an error",
            (json.dumps(reply) or "")[:300],
        )
        still_serving("arguments nested 120 deep", request_id + 1)
        request_id += 2
        # Under the transport's 16 MiB line limit a big argument is a call like any other.
        big = "name eq '" + "x" * (8 * 1024 * 1024) + "'"
        send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
            "name": "query-entities", "arguments": {"entityType": "accounts", "filterExpression": big}}})
        reply = answer(process, request_id, timeout=120)
        check(reply is not None, "an 8 MiB argument is answered", reply)
        still_serving("an 8 MiB argument", request_id + 1)
        request_id += 2
        # Over it, the line is skipped as it arrives (never held whole), nothing is sent to the
        # service, and the request is answered under its own id with an error naming the limit.
        huge = "x" * (32 * 1024 * 1024)
        before = last_request_seq()
        send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
            "name": "query-entities", "arguments": {"entityType": "accounts", "filterExpression": huge}}})
        reply = answer(process, request_id, timeout=120)
        error = (reply or {}).get("error") or {}
        check(
            error.get("code") == -32600 and "16 MiB" in error.get("message", ""),
            "a 32 MiB message is answered with an error naming the limit",
            (json.dumps(reply) or "")[:300],
        )
        check(last_request_seq() == before, "a 32 MiB message sends nothing to the service")
        still_serving("a 32 MiB message", request_id + 1)
        request_id += 2
        # A notification over the limit has no id to answer: it is dropped, and the server
        # goes on serving.
        send(process, {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"x": huge}})
        still_serving("a 32 MiB notification", request_id + 1)
        request_id += 2
        # A call that signs in and fails at the service: no secret in the answer either.
        send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
            "name": "get-entity", "arguments": {"entityType": "accounts", "entityId": str(uuid.uuid4())}}})
        reply = answer(process, request_id)
        seen.append(json.dumps(reply))
        check(reply is not None, "a call that reaches the service is answered", reply)
    finally:
        end_session(process)
    check(process.returncode == 0, "the server exits cleanly when stdin closes", process.returncode)
    with open(os.path.join(work, "raw-stderr.log"), "rb") as log:
        stderr = log.read().decode(errors="replace")
    check(
        EMULATOR_CLIENT_SECRET_TEXT not in stderr
        and not any(EMULATOR_CLIENT_SECRET_TEXT in answer for answer in seen),
        "the client secret is on neither stderr nor any answer (instructions, tool list, errors)",
    )
    check(
        not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", stderr) and "access_token" not in stderr,
        "no token is on stderr",
    )


async def wrong_secret(work: str) -> None:
    """A sign-in the token endpoint refuses: the error names the problem, and the secret that
    was refused appears neither in it nor on stderr."""
    secret = f"wrong-secret-{uuid.uuid4()}"
    with open(os.path.join(work, "connection.json"), encoding="utf-8") as file:
        connection = json.load(file)
    connection["name"] = "mcp-wrong-secret"
    connection["fields"]["clientSecret"] = secret
    bad = os.path.join(work, "wrong")
    os.makedirs(bad, exist_ok=True)
    with open(os.path.join(bad, "connection.json"), "w", encoding="utf-8") as file:
        json.dump(connection, file)
    os.chmod(os.path.join(bad, "connection.json"), 0o600)
    process = raw_session(bad)
    try:
        send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "0"}}})
        answer(process, 1)
        send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        send(process, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "get-current-user", "arguments": {}}})
        reply = answer(process, 2)
        check(
            reply is not None and reply.get("result", {}).get("isError") is True,
            "a refused sign-in is a tool error",
            reply,
        )
        check(secret not in json.dumps(reply), "the refused secret is not in the error")
    finally:
        end_session(process)
    with open(os.path.join(bad, "raw-stderr.log"), "rb") as log:
        check(secret not in log.read().decode(errors="replace"), "the refused secret is not on stderr")


EMULATOR_CLIENT_SECRET_TEXT = os.environ["EMULATOR_CLIENT_SECRET"]


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dynamics-mcp-") as work:
        connection = {
            "name": "mcp-e2e",
            "type": "oauth2-client-credentials",
            "fields": {
                "webApiUrl": EMULATOR_URL,
                "tokenUrl": os.environ["EMULATOR_TOKEN_URL"],
                "clientId": os.environ["EMULATOR_CLIENT_ID"],
                "clientSecret": EMULATOR_CLIENT_SECRET_TEXT,
            },
        }
        path = os.path.join(work, "connection.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(connection, file)
        os.chmod(path, 0o600)
        for scenario in (
            full_server,
            read_only_server,
            tables_server,
            impersonation,
            hostile_protocol,
            wrong_secret,
        ):
            print(f"# {scenario.__name__.replace('_', ' ')}")
            try:
                await scenario(work)
            except Exception as problem:  # a broken session fails the run, with its cause
                check(False, f"{scenario.__name__} ran to the end", repr(problem))
    total = passed + len(failures)
    if failures:
        print(f"\nMCP client test: {len(failures)} of {total} checks failed:")
        for what in failures:
            print(f"  - {what}")
        return 1
    print(f"\nMCP client test: all {total} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
