//! Deterministic sample data: the same configuration always yields the same rows and ids.

use crate::guid::{Guid, splitmix};
use crate::schema::{AttrKind, Entity};
use crate::store::{Store, Val};

/// The fixed people and organisation the emulator knows (WhoAmI and the token endpoint use them).
#[derive(Debug, Clone)]
pub struct Identities {
    pub organization_id: Guid,
    pub root_business_unit: Guid,
    /// The interactive user (password and authorization-code grants).
    pub admin_user: Guid,
    /// The application user behind client-credentials tokens.
    pub application_user: Guid,
    /// A user flagged as requiring MFA.
    pub mfa_user: Guid,
    /// A salesperson in a business unit of their own, without the delegate privilege: the user
    /// the tests impersonate, and a caller whose impersonation is refused.
    pub sales_user: Guid,
    /// A disabled user: impersonating them is refused.
    pub disabled_user: Guid,
    /// A second application user, without the delegate privilege.
    pub restricted_application_user: Guid,
    /// Users holding `prvActOnBehalfOfAnotherUser` (the Delegate role's privilege, which the
    /// System Administrator role has too): the admin and the main application user.
    pub delegates: Vec<Guid>,
}

pub const ADMIN_USERNAME: &str = "admin@emulator.local";
pub const MFA_USERNAME: &str = "mfa.user@emulator.local";
pub const SALES_USERNAME: &str = "riley.sales@emulator.local";
pub const DISABLED_USERNAME: &str = "jordan.former@emulator.local";
/// The `applicationid` of [`Identities::restricted_application_user`] (an app registration
/// the emulator's token endpoint does not serve).
pub const RESTRICTED_APP_ID: &str = "5b1e9c3d-7a2f-4d8e-9c6b-0f3a1d2e4b87";
/// Seeded systemuser rows with fixed identities; generated users follow them.
pub const FIXED_USERS: usize = 6;

const FIRST: &[&str] = &[
    "Yvonne", "Susanna", "Nancy", "Rene", "Paul", "Sidney", "Scott", "Robert", "Maria", "Thomas",
    "Aiko", "Luis", "Fatima", "Jonas", "Priya", "Chen", "Olga", "Kwame", "Ingrid", "Diego",
];
const LAST: &[&str] = &[
    "McKay",
    "Stubberod",
    "Anderson",
    "Valdes",
    "Cannon",
    "Higa",
    "Konersmann",
    "Lyon",
    "Garcia",
    "Andersen",
    "Tanaka",
    "Ortega",
    "Haddad",
    "Berg",
    "Natarajan",
    "Wei",
    "Ivanova",
    "Mensah",
    "Larsen",
    "O'Brien",
];
const COMPANY_A: &[&str] = &[
    "Fourth",
    "Blue",
    "Litware",
    "Adventure",
    "Fabrikam",
    "Contoso",
    "Alpine",
    "Northwind",
    "Coho",
    "Tailspin",
    "Wide World",
    "Proseware",
    "Lucerne",
    "Humongous",
    "Trey",
    "Woodgrove",
];
const COMPANY_B: &[&str] = &[
    "Coffee",
    "Yonder Airlines",
    "Inc.",
    "Works",
    "Pharmaceuticals",
    "Ski House",
    "Traders",
    "Winery",
    "Toys",
    "Importers",
    "Research",
    "Insurance",
    "Margie's Travel",
    "Bank",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Seattle", "WA", "United States"),
    ("Redmond", "WA", "United States"),
    ("Chicago", "IL", "United States"),
    ("Toronto", "ON", "Canada"),
    ("London", "", "United Kingdom"),
    ("Berlin", "", "Germany"),
    ("Paris", "", "France"),
    ("Tokyo", "", "Japan"),
    ("Sydney", "NSW", "Australia"),
    ("São Paulo", "SP", "Brazil"),
];
const CURRENCIES: &[(&str, &str, &str, f64)] = &[
    ("US Dollar", "USD", "$", 1.0),
    ("Euro", "EUR", "€", 0.92),
    ("Pound Sterling", "GBP", "£", 0.79),
    ("Yen", "JPY", "¥", 151.3),
    ("Canadian Dollar", "CAD", "CA$", 1.36),
];
const PRODUCTS: &[&str] = &[
    "Espresso Machine",
    "Coffee Grinder",
    "Milk Frother",
    "Bean Sampler",
    "Barista Course",
    "Cold Brew Kit",
    "Travel Mug",
    "Service Plan",
    "Water Filter",
    "Descaler",
];
const TITLES: &[&str] = &[
    "Purchasing Manager",
    "CEO",
    "Buyer",
    "Owner",
    "Sales Lead",
    "Engineer",
];
const WORDS: &[&str] = &[
    "Follow up",
    "Call back",
    "Send quote",
    "Review contract",
    "Schedule demo",
    "Prepare proposal",
    "Check order",
    "Update pricing",
    "Confirm delivery",
    "Plan workshop",
];

/// A systemuser with a fixed identity: first name, last name, user name, title, access mode,
/// application id.
type FixedUser<'a> = (&'a str, &'a str, &'a str, &'a str, i64, Option<&'a str>);

/// Row id of the `i`-th seeded row of a table.
pub fn seeded_id(entity: &Entity, i: usize) -> Guid {
    Guid::from_seed(entity.object_type_code as u64 * 7919, i as u64)
}

/// 2023-01-01T00:00:00Z
const BASE_TIME: i64 = 1_672_531_200;

fn h(entity: &Entity, i: usize, salt: u64) -> u64 {
    splitmix(
        (entity.object_type_code as u64)
            .wrapping_mul(0x1000_0000_01b3)
            .wrapping_add(i as u64)
            ^ splitmix(salt),
    )
}

fn pick<T>(list: &[T], n: u64) -> &T {
    &list[(n % list.len() as u64) as usize]
}

fn salt(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Row counts per table for a configuration.
pub fn row_count(entity: &Entity, rows_per_table: usize, overrides: &[(String, usize)]) -> usize {
    if let Some((_, n)) = overrides
        .iter()
        .find(|(k, _)| *k == entity.logical_name || *k == entity.entity_set_name)
    {
        return *n;
    }
    match entity.logical_name.as_str() {
        // Reference tables stay small whatever the scale, as in a real organisation.
        "businessunit" => rows_per_table.clamp(1, 10),
        "team" => rows_per_table.min(50),
        "transactioncurrency" => CURRENCIES.len(),
        // The "Default Unit" group and its base unit "Primary Unit" that every organization
        // has; price lists and their items are the organization's own (catalog/pricing.rs).
        "uomschedule" | "uom" => 1,
        "pricelevel" | "productpricelevel" => 0,
        "systemuser" => FIXED_USERS + rows_per_table.min(200),
        // Registration tables start empty; the SDK messages and filters are seeded apart.
        "serviceendpoint"
        | "sdkmessageprocessingstep"
        | "sdkmessageprocessingstepimage"
        | "sdkmessage"
        | "sdkmessagefilter" => 0,
        // Close activities, jobs, grants, custom API definitions and background operations
        // come from messages; the custom APIs and a process are seeded apart (messages.rs).
        "callbackregistration"
        | "opportunityclose"
        | "orderclose"
        | "asyncoperation"
        | "workflow"
        | "principalobjectaccess"
        | "customapi"
        | "customapirequestparameter"
        | "customapiresponseproperty"
        | "backgroundoperation" => 0,
        _ => rows_per_table,
    }
}

/// Fills the store.
pub fn seed(
    store: &mut Store,
    rows_per_table: usize,
    overrides: &[(String, usize)],
    client_id: &str,
) -> Identities {
    let schema = store.schema.clone();
    // Rows per table, at each table's index.
    let counts: Vec<usize> = schema
        .entities
        .iter()
        .map(|e| row_count(e, rows_per_table, overrides))
        .collect();
    let bu = schema.entity("businessunit");
    let su = schema.entity("systemuser");
    let ids = Identities {
        organization_id: Guid::from_seed(0x0a9, 1),
        root_business_unit: bu
            .map(|b| seeded_id(schema.table(b), 0))
            .unwrap_or_default(),
        admin_user: su
            .map(|s| seeded_id(schema.table(s), 0))
            .unwrap_or_default(),
        application_user: su
            .map(|s| seeded_id(schema.table(s), 1))
            .unwrap_or_default(),
        mfa_user: su
            .map(|s| seeded_id(schema.table(s), 2))
            .unwrap_or_default(),
        sales_user: su
            .map(|s| seeded_id(schema.table(s), 3))
            .unwrap_or_default(),
        disabled_user: su
            .map(|s| seeded_id(schema.table(s), 4))
            .unwrap_or_default(),
        restricted_application_user: su
            .map(|s| seeded_id(schema.table(s), 5))
            .unwrap_or_default(),
        delegates: su
            .map(|s| vec![seeded_id(schema.table(s), 0), seeded_id(schema.table(s), 1)])
            .unwrap_or_default(),
    };
    for (ei, entity) in schema.tables() {
        for i in 0..counts[ei.index()] {
            let vals = row(entity, i, &counts, &schema, client_id);
            debug_assert!(
                entity
                    .attributes
                    .iter()
                    .zip(&vals)
                    .all(|(a, v)| Store::fits(&a.kind, v))
            );
            // Seeded keys are unique by construction; a clash would be a bug in this file.
            let _ = store.insert(ei, vals, false);
        }
    }
    ids
}

fn row(
    e: &Entity,
    i: usize,
    counts: &[usize],
    schema: &crate::schema::Schema,
    client_id: &str,
) -> Vec<Val> {
    let mut vals = vec![Val::Null; e.attributes.len()];
    let created = BASE_TIME + (i as i64) * 37 + (h(e, i, 1) % 86_400) as i64;
    let modified = created + (h(e, i, 2) % (200 * 86_400)) as i64;
    let first = *pick(FIRST, h(e, i, 3));
    let last = *pick(LAST, h(e, i, 4));
    let city = pick(CITIES, h(e, i, 5));
    let company = format!(
        "{} {}",
        pick(COMPANY_A, h(e, i, 6)),
        pick(COMPANY_B, h(e, i, 7))
    );
    // Rows seeded in a table; none when the catalogue has no such table.
    let count_of = |name: &str| schema.entity(name).map_or(0, |t| counts[t.index()]);
    let target_of = |name: &str, n: u64| -> Val {
        let Some(t) = schema.entity(name) else {
            return Val::Null;
        };
        let count = counts[t.index()];
        if count == 0 {
            return Val::Null;
        }
        Val::Ref(seeded_id(schema.table(t), (n % count as u64) as usize), t)
    };
    for (ai, a) in e.attributes.iter().enumerate() {
        let n = h(e, i, salt(&a.logical_name));
        let name = a.logical_name.as_str();
        vals[ai] = match (&a.kind, name) {
            (AttrKind::Uniqueidentifier, _) if a.is_primary_id => Val::Guid(seeded_id(e, i)),
            // Seeded rows hold no files or images (files.rs stores them on upload).
            (AttrKind::File { .. } | AttrKind::Image { .. }, _) => Val::Null,
            _ if e.is_file_companion(name) => Val::Null,
            (_, "createdon") => Val::Date(created),
            (_, "modifiedon") => Val::Date(modified),
            (_, "createdby" | "modifiedby") => target_of("systemuser", 0),
            // Seeded rows were not written through impersonation.
            (_, "createdonbehalfby" | "modifiedonbehalfby") => Val::Null,
            (_, "versionnumber") => Val::Null,
            (_, "firstname") => Val::str(first),
            (_, "lastname") => Val::str(last),
            (_, "fullname") => Val::str(&format!("{first} {last}")),
            (_, "emailaddress1" | "internalemailaddress") => Val::str(&format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace('\'', ""),
                i
            )),
            (_, "telephone1") => Val::str(&format!("555-{:04}", n % 10_000)),
            (_, "address1_city") => Val::str(city.0),
            (_, "address1_stateorprovince") => Val::str(city.1),
            (_, "address1_country") => Val::str(city.2),
            (_, "address1_postalcode") => Val::str(&format!("{:05}", n % 100_000)),
            (_, "address1_line1") => Val::str(&format!("{} Main St.", n % 9_000 + 1)),
            (_, "accountnumber") => Val::str(&format!("A-{}", i + 1)),
            (_, "productnumber") => Val::str(&format!("P-{}", i + 1)),
            (_, "ordernumber") => Val::str(&format!("ORD-{:06}", i + 1)),
            (_, "new_code") => Val::str(&format!("PRJ-{}", i + 1)),
            (_, "websiteurl") => Val::str(&format!(
                "https://www.{}.example.com",
                company.split(' ').next().unwrap_or("www").to_lowercase()
            )),
            (_, "companyname") => Val::str(&company),
            (_, "jobtitle" | "title") => Val::str(pick::<&str>(TITLES, n)),
            (_, "statecode") => {
                Val::Int(if n.is_multiple_of(10) && e.logical_name != "systemuser" {
                    1
                } else {
                    0
                })
            }
            (_, "statuscode") => Val::Null, // derived below from statecode
            (_, "isdisabled") => Val::Bool(false),
            (_, "transactioncurrencyid") => target_of("transactioncurrency", 0),
            (_, "ownerid") => target_of("systemuser", n % 8),
            (_, "businessunitid") => target_of("businessunit", 0),
            (_, "parentbusinessunitid") => {
                if i == 0 {
                    Val::Null
                } else {
                    target_of("businessunit", 0)
                }
            }
            (_, "parentaccountid") if e.logical_name == "account" => {
                if i > 0 && n.is_multiple_of(5) {
                    target_of("account", n % i as u64)
                } else {
                    Val::Null
                }
            }
            (AttrKind::Lookup { targets, .. }, _) => {
                let t = pick(targets, n >> 8);
                if n.is_multiple_of(11) {
                    Val::Null
                } else {
                    target_of(t, (i as u64) ^ (n & 0xff))
                }
            }
            (AttrKind::String { max_len }, _) => {
                let text = if a.is_primary_name {
                    primary_name(e, i, &company, first, last, n)
                } else {
                    format!("{} {}", a.display_name, i + 1)
                };
                Val::str(&truncate(&text, *max_len as usize))
            }
            (AttrKind::Memo { .. }, _) => {
                if n.is_multiple_of(3) {
                    Val::Null
                } else {
                    Val::str(&format!(
                        "{} for {company}. Line two of the note.",
                        pick(WORDS, n)
                    ))
                }
            }
            (AttrKind::Integer { min, max }, _) => {
                let span = (max - min).clamp(1, 100_000) as u64;
                Val::Int(min + (n % span) as i64)
            }
            (AttrKind::BigInt, _) => Val::Int((n % 1_000_000) as i64),
            (AttrKind::Decimal { precision }, _) => {
                let scale = 10f64.powi(*precision as i32);
                Val::Num(((n % 100_000) as f64 / 100.0 * scale).round() / scale)
            }
            (AttrKind::Money, _) => Val::Num(((n % 5_000_000) / 100 * 100) as f64),
            (AttrKind::Boolean { .. }, _) => Val::Bool(n.is_multiple_of(4)),
            (AttrKind::DateTime { date_only }, _) => {
                let t = BASE_TIME + (n % (3 * 365 * 86_400)) as i64;
                Val::Date(if *date_only {
                    t - t.rem_euclid(86_400)
                } else {
                    t
                })
            }
            (AttrKind::Picklist { options }, _) => {
                if n.is_multiple_of(7) {
                    Val::Null
                } else {
                    Val::Int(pick(options, n >> 4).0)
                }
            }
            (AttrKind::State { .. } | AttrKind::Status { .. } | AttrKind::Uniqueidentifier, _) => {
                Val::Null
            }
        };
    }
    // Identity rows.
    if e.logical_name == "systemuser" {
        let set = |vals: &mut Vec<Val>, col: &str, v: Val| {
            if let Some(c) = e.attr(col) {
                vals[c] = v;
            }
        };
        let special: Option<FixedUser> = match i {
            0 => Some((
                "Emulator",
                "Admin",
                ADMIN_USERNAME,
                "System Administrator",
                0,
                None,
            )),
            1 => Some((
                "#",
                "dataverse-emulator",
                "dataverse-emulator@emulator.local",
                "Application User",
                4,
                Some(client_id),
            )),
            2 => Some(("Mfa", "User", MFA_USERNAME, "Analyst", 0, None)),
            3 => Some(("Riley", "Sales", SALES_USERNAME, "Salesperson", 0, None)),
            4 => Some((
                "Jordan",
                "Former",
                DISABLED_USERNAME,
                "Former Employee",
                0,
                None,
            )),
            5 => Some((
                "#",
                "emulator-reporting",
                "emulator-reporting@emulator.local",
                "Application User",
                4,
                Some(RESTRICTED_APP_ID),
            )),
            _ => None,
        };
        if let Some((f, l, user, title, mode, app)) = special {
            set(&mut vals, "firstname", Val::str(f));
            set(&mut vals, "lastname", Val::str(l));
            set(&mut vals, "fullname", Val::str(&format!("{f} {l}")));
            set(&mut vals, "domainname", Val::str(user));
            set(&mut vals, "internalemailaddress", Val::str(user));
            set(&mut vals, "title", Val::str(title));
            set(&mut vals, "accessmode", Val::Int(mode));
            set(&mut vals, "applicationid", app.map_or(Val::Null, Val::str));
            set(&mut vals, "isdisabled", Val::Bool(i == 4));
            // The salesperson works in the second business unit (when there is one), so
            // WhoAmI under impersonation names a business unit of its own.
            if i == 3 && count_of("businessunit") > 1 {
                set(&mut vals, "businessunitid", target_of("businessunit", 1));
            }
        } else {
            let user = format!(
                "{}.{}{}@emulator.local",
                first.to_lowercase(),
                last.to_lowercase().replace('\'', ""),
                i
            );
            set(&mut vals, "domainname", Val::str(&user));
            set(&mut vals, "internalemailaddress", Val::str(&user));
            set(&mut vals, "applicationid", Val::Null);
            set(&mut vals, "accessmode", Val::Int(0));
        }
        set(
            &mut vals,
            "azureactivedirectoryobjectid",
            Val::str(&Guid::from_seed(0xaad, i as u64).to_string()),
        );
    }
    if e.logical_name == "transactioncurrency" {
        let (name, code, symbol, rate) = CURRENCIES[i % CURRENCIES.len()];
        let set = |vals: &mut Vec<Val>, col: &str, v: Val| {
            if let Some(c) = e.attr(col) {
                vals[c] = v;
            }
        };
        set(&mut vals, "currencyname", Val::str(name));
        set(&mut vals, "isocurrencycode", Val::str(code));
        set(&mut vals, "currencysymbol", Val::str(symbol));
        set(&mut vals, "exchangerate", Val::Num(rate));
        set(&mut vals, "currencyprecision", Val::Int(2));
        set(&mut vals, "statecode", Val::Int(0));
    }
    if matches!(e.logical_name.as_str(), "uomschedule" | "uom" | "product") {
        let set = |vals: &mut Vec<Val>, col: &str, v: Val| {
            if let Some(c) = e.attr(col) {
                vals[c] = v;
            }
        };
        match e.logical_name.as_str() {
            "uomschedule" => {
                set(&mut vals, "name", Val::str("Default Unit"));
                set(&mut vals, "baseuomname", Val::str("Primary Unit"));
                set(&mut vals, "statecode", Val::Int(0));
            }
            "uom" => {
                set(&mut vals, "name", Val::str("Primary Unit"));
                set(&mut vals, "uomscheduleid", target_of("uomschedule", 0));
                set(&mut vals, "baseuom", Val::Null);
                set(&mut vals, "quantity", Val::Num(1.0));
                set(&mut vals, "isschedulebaseuom", Val::Bool(true));
            }
            _ => {
                // Seeded products are plain products sold in the default unit.
                set(&mut vals, "productstructure", Val::Int(1));
                set(&mut vals, "parentproductid", Val::Null);
                set(
                    &mut vals,
                    "defaultuomscheduleid",
                    target_of("uomschedule", 0),
                );
                set(&mut vals, "defaultuomid", target_of("uom", 0));
            }
        }
    }
    if e.logical_name == "businessunit"
        && i == 0
        && let Some(c) = e.attr("name")
    {
        vals[c] = Val::str("emulator");
    }
    if e.logical_name == "businessunit"
        && i == 1
        && let Some(c) = e.attr("name")
    {
        vals[c] = Val::str("Sales");
    }
    // Two owner teams: the root business unit's default team (named after it, as Dataverse
    // names default teams) and the sales team in the salesperson's business unit.
    if e.logical_name == "team" && i < 2 {
        let set = |vals: &mut Vec<Val>, col: &str, v: Val| {
            if let Some(c) = e.attr(col) {
                vals[c] = v;
            }
        };
        let bu = count_of("businessunit");
        set(&mut vals, "name", Val::str(["emulator", "Sales"][i]));
        set(&mut vals, "teamtype", Val::Int(0));
        set(
            &mut vals,
            "businessunitid",
            target_of("businessunit", if i == 1 && bu > 1 { 1 } else { 0 }),
        );
    }
    if let Some(sc) = e.attr("statuscode") {
        let state = e.attr("statecode").and_then(|c| match vals[c] {
            Val::Int(s) => Some(s),
            _ => None,
        });
        vals[sc] = Val::Int(default_status(e, state.unwrap_or(0)));
    }
    vals
}

/// The default status reason for a state: Dataverse pairs them by position in our catalogue.
pub fn default_status(e: &Entity, state: i64) -> i64 {
    let (Some(sc), Some(st)) = (e.attr("statuscode"), e.attr("statecode")) else {
        return 1;
    };
    let statuses = e.attributes[sc].kind.options().unwrap_or(&[]);
    let states = e.attributes[st].kind.options().unwrap_or(&[]);
    let pos = states.iter().position(|(v, _)| *v == state).unwrap_or(0);
    match e.logical_name.as_str() {
        "task" => [2, 5, 6].get(pos).copied().unwrap_or(2),
        "salesorder" => [1, 100001, 4, 100001, 100003]
            .get(pos)
            .copied()
            .unwrap_or(1),
        "opportunity" => [1, 3, 4].get(pos).copied().unwrap_or(1),
        "lead" => [1, 3, 4].get(pos).copied().unwrap_or(1),
        _ => statuses.get(pos).map(|(v, _)| *v).unwrap_or(1),
    }
}

fn primary_name(e: &Entity, i: usize, company: &str, first: &str, last: &str, n: u64) -> String {
    match e.logical_name.as_str() {
        "account" => company.to_string(),
        "businessunit" => format!("Division {i}"),
        "team" => format!("{} Team {}", pick(COMPANY_A, n), i + 1),
        "lead" => format!("Interested in {}", pick(PRODUCTS, n)),
        "opportunity" => format!("{} units of {}", n % 90 + 10, pick(PRODUCTS, n >> 3)),
        "product" => format!("{} {}", pick(PRODUCTS, n), i + 1),
        "salesorder" => format!("Order {} for {company}", i + 1),
        "salesorderdetail" => pick(PRODUCTS, n).to_string(),
        "annotation" => format!("Note about {first} {last}"),
        "task" => format!("{} with {first} {last}", pick(WORDS, n)),
        "new_project" => format!("Project {} for {company}", i + 1),
        _ => format!("{} {}", e.display_name, i + 1),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
