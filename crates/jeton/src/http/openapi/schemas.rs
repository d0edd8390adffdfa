//! What the derived schemas cannot say on their own, said once for the whole
//! document: ids are UUIDs, abilities and constants are enums, the order
//! line, the pages and the client bodies have names, and the login answers
//! one of two shapes. Generated clients get one type for each.

use jeton_auth::TokenKind;
use serde_json::{Map, Value, json};

use super::problems;
use crate::{domain::abilities, http::routes::PREFIX};

const ID: &str = "#/components/schemas/Id";

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Applies every rule below to `doc`, whose operations are complete.
pub(super) fn shape(doc: &mut Value) {
    login_answer(doc);
    pages(doc);
    problems::add_schemas(doc);
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has schemas");
    ids(schemas);
    constants(schemas);
    ability_enums(schemas);
    order_line(schemas);
    client_bodies(schemas);
}

fn schema_mut<'a>(schemas: &'a mut Map<String, Value>, name: &str) -> &'a mut Value {
    schemas
        .get_mut(name)
        .unwrap_or_else(|| panic!("the document has the schema {name}"))
}

fn property_mut<'a>(schemas: &'a mut Map<String, Value>, name: &str, field: &str) -> &'a mut Value {
    let property = &mut schema_mut(schemas, name)["properties"][field];
    assert!(property.is_object(), "{name} has the property {field}");
    property
}

/// The ids of what the API returns: `Id`, a UUID. (Ids sent in requests
/// keep their own schema, which says what the parser accepts.)
fn ids(schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas.iter_mut() {
        if name.ends_with("Input") {
            continue;
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            // The subject of an audit event is a key or a token, stored as
            // the text that named it.
            let is_id = field == "id" || (field.ends_with("_id") && field != "subject_id");
            if !is_id || property.get("format").is_some() || property.get("$ref").is_some() {
                continue;
            }
            let description = property.get("description").cloned();
            let mut id = match property["type"].as_array() {
                Some(types) if types.contains(&json!("null")) => {
                    json!({"anyOf": [{"$ref": ID}, {"type": "null"}]})
                }
                _ if property["type"] == "string" => json!({"$ref": ID}),
                _ => continue,
            };
            if let Some(description) = description {
                id["description"] = description;
            }
            *property = id;
        }
    }
    schemas.insert(
        "Id".into(),
        json!({
            "type": "string",
            "format": "uuid",
            "description": "An id the API made: a UUID (version 7, so ids sort by creation time)",
            "example": "0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b",
        }),
    );
}

/// Fields whose value is always the same, or one of a few.
fn constants(schemas: &mut Map<String, Value>) {
    *property_mut(schemas, "IssuedToken", "token_type") = json!({
        "type": "string",
        "const": "Bearer",
        "description": "Always `Bearer`",
    });
    *property_mut(schemas, "AuditActor", "kind") = json!({
        "type": "string",
        "enum": ["client_key", "customer", "guest", "staff", "cli", "secret_scanning"],
    });
}

/// `Ability` (every ability a token may hold, wildcards included), and the
/// narrower sets a request may ask for: `UserAbility` for a user token,
/// `PublishableAbility` for a publishable key.
fn ability_enums(schemas: &mut Map<String, Value>) {
    let described = |kind: TokenKind, description: &str| {
        json!({
            "type": "string",
            "enum": abilities::grantable(kind),
            "description": description,
        })
    };
    schemas.insert(
        "Ability".into(),
        described(
            TokenKind::Secret,
            "What a token may do: `resource:action`, `resource:*` or `*`",
        ),
    );
    schemas.insert(
        "UserAbility".into(),
        described(TokenKind::User, "An ability a user token may hold"),
    );
    schemas.insert(
        "PublishableAbility".into(),
        described(
            TokenKind::Publishable,
            "An ability a publishable key may hold",
        ),
    );
    for name in ["IssuedToken", "UserToken", "Client"] {
        property_mut(schemas, name, "abilities")["items"] = reference("Ability");
    }
    let items = &mut property_mut(schemas, "NewTokenInput", "abilities")["items"];
    assert_eq!(
        items["enum"],
        json!(abilities::grantable(TokenKind::User)),
        "a personal token asks for user abilities"
    );
    *items = reference("UserAbility");
}

/// `OrderLineInput`: one line of `OrderInput`.
fn order_line(schemas: &mut Map<String, Value>) {
    let items = &mut property_mut(schemas, "OrderInput", "items")["items"];
    let line = std::mem::replace(items, reference("OrderLineInput"));
    assert!(line["properties"].is_object(), "an order line is inline");
    schemas.insert("OrderLineInput".into(), line);
}

/// `NewClientInput`: one schema per kind, as the server checks them. A
/// publishable client lists its origins and may have a per-IP limit; a
/// secret client has neither.
fn client_bodies(schemas: &mut Map<String, Value>) {
    let input = schemas
        .remove("NewClientInput")
        .expect("the document has NewClientInput");
    let properties = input["properties"].clone();
    let body = |kind: &str, ability: &str| {
        let mut properties = properties.clone();
        properties["kind"] = json!({"type": "string", "const": kind});
        properties["abilities"]["items"] = reference(ability);
        properties["abilities"]["description"] = json!(format!("Each an `{ability}`"));
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "kind", "abilities"],
            "properties": properties,
        })
    };
    let mut publishable = body("publishable", "PublishableAbility");
    publishable["required"] = json!(["name", "kind", "abilities", "allowed_origins"]);
    publishable["properties"]["allowed_origins"]["minItems"] = json!(1);
    publishable["properties"]["allowed_origins"]["description"] =
        json!("The websites the key may be used from: at least one");
    publishable["description"] =
        json!("`POST /admin/clients` for a storefront: a publishable key, used from browsers");
    publishable["example"] = input["example"].clone();
    let mut secret = body("secret", "Ability");
    secret["properties"]["allowed_origins"] = json!({
        "type": "array",
        "maxItems": 0,
        "items": {"type": "string"},
        "description": "Secret keys are refused from browsers: no origins (left out, or empty)",
    });
    secret["properties"]["per_ip_rate_limit_per_minute"] = json!({
        "type": "null",
        "description": "Publishable keys only: left out, or `null`",
    });
    secret["description"] = json!("`POST /admin/clients` for a server: a secret key");
    secret["example"] = json!({"name": "Back office", "kind": "secret", "abilities": ["admin"]});
    schemas.insert("NewPublishableClientInput".into(), publishable);
    schemas.insert("NewSecretClientInput".into(), secret);
    schemas.insert(
        "NewClientInput".into(),
        json!({
            "description": "`POST /admin/clients`: a publishable or a secret client, by `kind`",
            "oneOf": [reference("NewPublishableClientInput"), reference("NewSecretClientInput")],
            "discriminator": {
                "propertyName": "kind",
                "mapping": {
                    "publishable": "#/components/schemas/NewPublishableClientInput",
                    "secret": "#/components/schemas/NewSecretClientInput",
                },
            },
        }),
    );
}

/// The login answers an `IssuedToken`, or with `"session": "cookie"` a
/// `CookieSession`: the token is then only in the cookie.
fn login_answer(doc: &mut Value) {
    let content = &mut doc["paths"][format!("{PREFIX}/auth/login")]["post"]["responses"]["201"]["content"]
        ["application/json"];
    assert_eq!(content["schema"], reference("IssuedToken"));
    content["schema"] = json!({"oneOf": [reference("IssuedToken"), reference("CookieSession")]});
}

/// Each page's schema by name (`ProductPage`, …), its items by reference
/// to their own schema rather than copied.
fn pages(doc: &mut Value) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has schemas");
    let generic: Vec<String> = schemas
        .keys()
        .filter(|name| name.starts_with("Page_"))
        .cloned()
        .collect();
    let mut renamed = Vec::new();
    for name in generic {
        let item = name.trim_start_matches("Page_").to_owned();
        assert!(schemas.contains_key(&item), "{name}: {item} is a schema");
        let mut page = schemas.remove(&name).expect("listed");
        page["properties"]["data"]["items"] = reference(&item);
        page["description"] = json!(format!("A page of `{item}`"));
        let page_name = format!("{item}Page");
        schemas.insert(page_name.clone(), page);
        renamed.push((name, page_name));
    }
    let mut text = doc.to_string();
    for (from, to) in renamed {
        text = text.replace(
            &format!("\"#/components/schemas/{from}\""),
            &format!("\"#/components/schemas/{to}\""),
        );
    }
    *doc = serde_json::from_str(&text).expect("the document is JSON");
}
