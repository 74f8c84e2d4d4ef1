//! Run Fetch XML Query: Execute a fetch XML query against your Microsoft Dynamics 365 CRM instance.

use crate::actions::ActionDef;
use crate::definition::{Format, InputDef, Kind};
use crate::inputs::*;

const XML_QUERY: InputDef = InputDef::new("xmlQuery", "XML Query", Kind::Multiline)
    .required()
    .comments("An XML query string to use as a Fetch query in Microsoft Dynamics 365")
    .example(
        "<fetch top=\"10\"><entity name=\"account\"><attribute name=\"name\" /></entity></fetch>",
    );

const INCLUDE_ANNOTATIONS: InputDef =
    InputDef::new("includeAnnotations", "Include Annotations", Kind::Text)
        .comments("Specifies annotations to include with the result")
        .example("OData.Community.Display.V1.FormattedValue");

const PAGE_NUMBER: InputDef = InputDef::new("pageNumber", "Page Number", Kind::Number)
    .comments("The page number to request")
    .format(Format::Range(1, 1_000_000));

const IMPERSONATE_USER_ID: InputDef =
    InputDef::new("impersonateUserId", "Impersonate User Id", Kind::Text)
        .comments("Specifies the GUID of a user to impersonate when executing the query")
        .format(Format::Guid);

pub const ACTION: ActionDef = ActionDef {
    key: "run-fetch-xml-query",
    label: "Run Fetch XML Query",
    description: "Execute a fetch XML query against your Microsoft Dynamics 365 CRM instance.",
    group: Some("CRM"),
    inputs: &[
        ENTITY_TYPE,
        XML_QUERY,
        INCLUDE_ANNOTATIONS,
        PAGE_NUMBER,
        NEXT_PAGE_ID,
        IMPERSONATE_USER_ID,
        CONNECTION,
    ],
    example_output: None,
    run: None,
};
