//! The tables behind Dataverse messages, custom APIs and background work: the close activities
//! the sales messages create, system jobs, processes, shared access, the custom API definition
//! tables and background operations. Each table's columns are the documented ones the emulator
//! reads or writes (learn.microsoft.com/power-apps/developer/data-platform/reference/entities/`<name>`).

use crate::schema::{Entity, EntityBuilder as B, Ownership::*, RelDecl};

fn rel(
    schema_name: &str,
    referencing: &str,
    attribute: &str,
    referenced: &str,
    nav: &str,
) -> RelDecl {
    RelDecl {
        schema_name: schema_name.into(),
        referencing: referencing.into(),
        attribute: attribute.into(),
        referenced: referenced.into(),
        referencing_nav: nav.into(),
        referenced_nav: schema_name.into(),
    }
}

/// The tables a shared object may be: `principalobjectaccess.objectid` and
/// `asyncoperation.regardingobjectid` point at one of them.
pub const SHARABLE: &[&str] = &["account", "contact", "lead", "opportunity", "salesorder"];

/// The tables.
pub fn entities() -> Vec<Entity> {
    // reference/entities/opportunityclose: "Activity that is created automatically when an
    // opportunity is closed, containing information such as the description of the closing and
    // actual revenue." Status: Open (0) Open (1); Completed (1) Completed (2); Canceled (2)
    // Canceled (3).
    let opportunityclose = B::new(
        "opportunityclose",
        "OpportunityClose",
        "opportunitycloses",
        "Opportunity Close",
        "Opportunity Close",
        4208,
        UserOwned,
        "Activity that is created automatically when an opportunity is closed, containing information such as the description of the closing and actual revenue.",
    )
    .activity()
    .id("activityid", "Opportunity Close")
    .name("subject", "Subject", 200)
    .lookup("opportunityid", "Opportunity", &["opportunity"])
    .money("actualrevenue", "Actual Revenue")
    .datetime("actualend", "Actual End", false)
    .memo("description", "Description")
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[(0, "Open"), (1, "Completed"), (2, "Canceled")],
        &[(1, "Open"), (2, "Completed"), (3, "Canceled")],
    )
    .audit()
    .build();

    // reference/entities/orderclose: "Activity generated automatically when an order is closed."
    let orderclose = B::new(
        "orderclose",
        "OrderClose",
        "ordercloses",
        "Order Close",
        "Order Close",
        4209,
        UserOwned,
        "Activity generated automatically when an order is closed.",
    )
    .activity()
    .id("activityid", "Order Close")
    .name("subject", "Subject", 200)
    .lookup("salesorderid", "Order", &["salesorder"])
    .datetime("actualend", "Actual End", false)
    .memo("description", "Description")
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[(0, "Open"), (1, "Completed"), (2, "Canceled")],
        &[(1, "Open"), (2, "Completed"), (3, "Canceled")],
    )
    .audit()
    .build();

    // reference/entities/asyncoperation: "Process whose execution can proceed independently or
    // in the background." StateCode: Ready 0, Suspended 1, Locked 2, Completed 3; StatusCode:
    // Waiting For Resources 0 (Ready), Waiting 10 (Suspended), In Progress 20, Pausing 21,
    // Canceling 22 (Locked), Succeeded 30, Failed 31, Canceled 32 (Completed).
    let asyncoperation = B::new(
        "asyncoperation",
        "AsyncOperation",
        "asyncoperations",
        "System Job",
        "System Jobs",
        4700,
        UserOwned,
        "Process whose execution can proceed independently or in the background.",
    )
    .id("asyncoperationid", "System Job")
    .name("name", "System Job Name", 256)
    .picklist(
        "operationtype",
        "System Job Type",
        &[
            (1, "System Event"),
            (10, "Workflow"),
            (13, "Bulk Delete"),
            (94, "Bulk Delete Child"),
        ],
    )
    .memo("message", "Message")
    .memo("friendlymessage", "Friendly message")
    .int(
        "errorcode",
        "Error Code",
        i64::from(i32::MIN),
        i64::from(i32::MAX),
    )
    .memo("data", "Data")
    .datetime("startedon", "Started On", false)
    .datetime("completedon", "Completed On", false)
    .lookup("workflowactivationid", "Process", &["workflow"])
    .lookup("regardingobjectid", "Regarding", SHARABLE)
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[
            (0, "Ready"),
            (1, "Suspended"),
            (2, "Locked"),
            (3, "Completed"),
        ],
        &[
            (0, "Waiting For Resources"),
            (10, "Waiting"),
            (20, "In Progress"),
            (21, "Pausing"),
            (22, "Canceling"),
            (30, "Succeeded"),
            (31, "Failed"),
            (32, "Canceled"),
        ],
    )
    .audit()
    .build();

    // reference/entities/workflow: "Set of logical rules that define the steps necessary to
    // automate a specific business process, task, or set of actions to be performed."
    let workflow = B::new(
        "workflow",
        "Workflow",
        "workflows",
        "Process",
        "Processes",
        4703,
        UserOwned,
        "Set of logical rules that define the steps necessary to automate a specific business process, task, or set of actions to be performed.",
    )
    .id("workflowid", "Process")
    .name("name", "Process Name", 100)
    .picklist(
        "category",
        "Category",
        &[
            (0, "Workflow"),
            (1, "Dialog"),
            (2, "Business Rule"),
            (3, "Action"),
            (4, "Business Process Flow"),
            (5, "Modern Flow"),
        ],
    )
    .picklist(
        "type",
        "Type",
        &[(1, "Definition"), (2, "Activation"), (3, "Template")],
    )
    .string("primaryentity", "Primary Entity", 100)
    .boolean("ondemand", "Run as On Demand", "Yes", "No")
    .memo("description", "Description")
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[(0, "Draft"), (1, "Activated"), (2, "Suspended")],
        &[(1, "Draft"), (2, "Activated"), (3, "Company DLP Violation")],
    )
    .audit()
    .build();

    // reference/entities/principalobjectaccess: "For internal use only." The rows GrantAccess
    // writes: who (principalid) may do what (accessrightsmask) to which row (objectid).
    let principalobjectaccess = B::new(
        "principalobjectaccess",
        "PrincipalObjectAccess",
        "principalobjectaccessset",
        "Principal Object Access",
        "Principal Object Accesses",
        11,
        OrganizationOwned,
        "For internal use only.",
    )
    .id("principalobjectaccessid", "Principal Object Access")
    .name("objecttypecode", "Object Type", 64)
    .lookup("objectid", "Object", SHARABLE)
    .lookup("principalid", "Principal", &["systemuser", "team"])
    .string("principaltypecode", "Principal Type", 64)
    .int(
        "accessrightsmask",
        "Access Rights Mask",
        0,
        i64::from(i32::MAX),
    )
    .int(
        "inheritedaccessrightsmask",
        "Inherited Access Rights Mask",
        0,
        i64::from(i32::MAX),
    )
    .audit()
    .build();

    // custom-api-tables: "CustomAPI table columns".
    let customapi = B::new(
        "customapi",
        "CustomAPI",
        "customapis",
        "Custom API",
        "Custom APIs",
        10_020,
        UserOwned,
        "Entity that defines a custom API",
    )
    .id("customapiid", "Custom API")
    .name("name", "Name", 100)
    .string("uniquename", "Unique Name", 128)
    .string("displayname", "Display Name", 100)
    .string("description", "Description", 300)
    .picklist(
        "bindingtype",
        "Binding Type",
        &[(0, "Global"), (1, "Entity"), (2, "EntityCollection")],
    )
    .string("boundentitylogicalname", "Bound Entity Logical Name", 100)
    .boolean("isfunction", "Is Function", "Yes", "No")
    .boolean("isprivate", "Is Private", "Yes", "No")
    .picklist(
        "allowedcustomprocessingsteptype",
        "Allowed Custom Processing Step Type",
        &[(0, "None"), (1, "Async Only"), (2, "Sync and Async")],
    )
    .string("executeprivilegename", "Execute Privilege Name", 100)
    .boolean(
        "workflowsdkstepenabled",
        "Enabled for Workflow",
        "Yes",
        "No",
    )
    // reference/entities/customapi, SdkMessageId: the message created for the custom API
    // (custom-api-tables, UniqueName: "This will be the name of the message created").
    .lookup("sdkmessageid", "SDK Message", &["sdkmessage"])
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[(0, "Active"), (1, "Inactive")],
        &[(1, "Active"), (2, "Inactive")],
    )
    .audit()
    .alt_key("CustomAPIUniqueNameKey", "Unique Name", &["uniquename"])
    .build();

    // custom-api-tables: "CustomAPIRequestParameter table columns"; Type: Boolean 0, DateTime 1,
    // Decimal 2, Entity 3, EntityCollection 4, EntityReference 5, Float 6, Integer 7, Money 8,
    // Picklist 9, String 10, StringArray 11, Guid 12.
    let request_parameter = B::new(
        "customapirequestparameter",
        "CustomAPIRequestParameter",
        "customapirequestparameters",
        "Custom API Request Parameter",
        "Custom API Request Parameters",
        10_021,
        UserOwned,
        "Entity that defines a request parameter for a custom API",
    )
    .id(
        "customapirequestparameterid",
        "Custom API Request Parameter",
    )
    .name("name", "Name", 100)
    .string("uniquename", "Unique Name", 128)
    .string("displayname", "Display Name", 100)
    .string("description", "Description", 300)
    .picklist("type", "Type", PARAMETER_TYPES)
    .boolean("isoptional", "Is Optional", "Yes", "No")
    .string("logicalentityname", "Logical Entity Name", 100)
    .lookup("customapiid", "Custom API", &["customapi"])
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[(0, "Active"), (1, "Inactive")],
        &[(1, "Active"), (2, "Inactive")],
    )
    .audit()
    .build();

    // custom-api-tables: "CustomAPIResponseProperty table columns" (the same Type choices).
    let response_property = B::new(
        "customapiresponseproperty",
        "CustomAPIResponseProperty",
        "customapiresponseproperties",
        "Custom API Response Property",
        "Custom API Response Properties",
        10_022,
        UserOwned,
        "Entity that defines a response property for a custom API",
    )
    .id(
        "customapiresponsepropertyid",
        "Custom API Response Property",
    )
    .name("name", "Name", 100)
    .string("uniquename", "Unique Name", 128)
    .string("displayname", "Display Name", 100)
    .string("description", "Description", 300)
    .picklist("type", "Type", PARAMETER_TYPES)
    .string("logicalentityname", "Logical Entity Name", 100)
    .lookup("customapiid", "Custom API", &["customapi"])
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .state_status(
        &[(0, "Active"), (1, "Inactive")],
        &[(1, "Active"), (2, "Inactive")],
    )
    .audit()
    .build();

    // background-operations: "Background operations table". Its state and status columns are
    // named backgroundoperationstatecode / backgroundoperationstatuscode: Ready 0, Locked 2,
    // Completed 3; Waiting For Resources 0, In Progress 20, Canceling 22, Succeeded 30,
    // Failed 31, Canceled 32.
    let backgroundoperation = B::new(
        "backgroundoperation",
        "BackgroundOperation",
        "backgroundoperations",
        "Background Operation",
        "Background Operations",
        10_023,
        OrganizationOwned,
        "Background operations: requests Dataverse processes asynchronously.",
    )
    .id("backgroundoperationid", "Background Operation")
    .name("name", "Name", 256)
    .string("displayname", "DisplayName", 256)
    .picklist(
        "backgroundoperationstatecode",
        "Status",
        &[(0, "Ready"), (2, "Locked"), (3, "Completed")],
    )
    .picklist(
        "backgroundoperationstatuscode",
        "Status Reason",
        &[
            (0, "Waiting For Resources"),
            (20, "In Progress"),
            (22, "Canceling"),
            (30, "Succeeded"),
            (31, "Failed"),
            (32, "Canceled"),
        ],
    )
    .memo("inputparameters", "Input Parameters")
    .memo("outputparameters", "Output Parameters")
    .datetime("starttime", "Start Time", false)
    .datetime("endtime", "End Time", false)
    .int("retrycount", "Retry Count", 0, 100)
    .int(
        "errorcode",
        "Error Code",
        i64::from(i32::MIN),
        i64::from(u32::MAX),
    )
    .memo("errormessage", "Error Message")
    .string("runas", "Run As", 100)
    .int("ttlinseconds", "Time to live", 0, i64::from(i32::MAX))
    .audit()
    .build();

    // reference/entities/callbackregistration: "Callback Registration that stores
    // configuration": how Power Automate flows subscribe to row changes (message: Create 1,
    // Delete 2, Update 3, CreateOrUpdate 4, CreateOrDelete 5, UpdateOrDelete 6,
    // CreateOrUpdateOrDelete 7).
    let callbackregistration = B::new(
        "callbackregistration",
        "CallbackRegistration",
        "callbackregistrations",
        "Callback Registration",
        "Callback Registrations",
        301,
        UserOwned,
        "Callback Registration that stores configuration.",
    )
    .id("callbackregistrationid", "Callback Registration")
    .name("name", "Name", 100)
    .string("entityname", "Entity Name", 255)
    .picklist(
        "message",
        "Message",
        &[
            (1, "Create"),
            (2, "Delete"),
            (3, "Update"),
            (4, "CreateOrUpdate"),
            (5, "CreateOrDelete"),
            (6, "UpdateOrDelete"),
            (7, "CreateOrUpdateOrDelete"),
        ],
    )
    .picklist(
        "scope",
        "Scope",
        &[
            (1, "User"),
            (2, "BusinessUnit"),
            (3, "ParentChildBusinessUnit"),
            (4, "Organization"),
        ],
    )
    .string("url", "Url", 2000)
    .string("filteringattributes", "Filtering Attributes", 100_000)
    .string("version", "Version", 100)
    .lookup("ownerid", "Owner", &["systemuser", "team"])
    .audit()
    .build();

    vec![
        callbackregistration,
        opportunityclose,
        orderclose,
        asyncoperation,
        workflow,
        principalobjectaccess,
        customapi,
        request_parameter,
        response_property,
        backgroundoperation,
    ]
}

/// The `Type` choices of custom API request parameters and response properties.
pub const PARAMETER_TYPES: &[(i64, &str)] = &[
    (0, "Boolean"),
    (1, "DateTime"),
    (2, "Decimal"),
    (3, "Entity"),
    (4, "EntityCollection"),
    (5, "EntityReference"),
    (6, "Float"),
    (7, "Integer"),
    (8, "Money"),
    (9, "Picklist"),
    (10, "String"),
    (11, "StringArray"),
    (12, "Guid"),
];

/// The relationships of these tables.
pub fn relationships() -> Vec<RelDecl> {
    let mut rels = vec![
        rel(
            "Opportunity_OpportunityClose",
            "opportunityclose",
            "opportunityid",
            "opportunity",
            "opportunityid",
        ),
        rel(
            "SalesOrder_OrderClose",
            "orderclose",
            "salesorderid",
            "salesorder",
            "salesorderid",
        ),
        rel(
            "Workflow_AsyncOperations",
            "asyncoperation",
            "workflowactivationid",
            "workflow",
            "workflowactivationid",
        ),
        rel(
            "CustomAPIRequestParameters",
            "customapirequestparameter",
            "customapiid",
            "customapi",
            "CustomAPIId",
        ),
        rel(
            "CustomAPIResponseProperties",
            "customapiresponseproperty",
            "customapiid",
            "customapi",
            "CustomAPIId",
        ),
    ];
    for target in SHARABLE {
        rels.push(rel(
            &format!("{target}_AsyncOperations"),
            "asyncoperation",
            "regardingobjectid",
            target,
            &format!("regardingobjectid_{target}"),
        ));
        rels.push(rel(
            &format!("{target}_principalobjectaccess"),
            "principalobjectaccess",
            "objectid",
            target,
            &format!("objectid_{target}"),
        ));
    }
    for principal in ["systemuser", "team"] {
        rels.push(rel(
            &format!("{principal}_principalobjectaccess_principalid"),
            "principalobjectaccess",
            "principalid",
            principal,
            &format!("principalid_{principal}"),
        ));
    }
    for logical in [
        "callbackregistration",
        "opportunityclose",
        "orderclose",
        "asyncoperation",
        "workflow",
        "customapi",
        "customapirequestparameter",
        "customapiresponseproperty",
    ] {
        rels.push(rel(
            &format!("user_{logical}"),
            logical,
            "ownerid",
            "systemuser",
            "ownerid",
        ));
    }
    for logical in [
        "callbackregistration",
        "opportunityclose",
        "orderclose",
        "asyncoperation",
        "workflow",
        "principalobjectaccess",
        "customapi",
        "customapirequestparameter",
        "customapiresponseproperty",
        "backgroundoperation",
    ] {
        for column in [
            "createdby",
            "modifiedby",
            "createdonbehalfby",
            "modifiedonbehalfby",
        ] {
            rels.push(rel(
                &format!("lk_{logical}_{column}"),
                logical,
                column,
                "systemuser",
                column,
            ));
        }
    }
    rels
}
