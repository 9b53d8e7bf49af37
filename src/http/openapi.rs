//! The OpenAPI 3.1 document of Cordon's HTTP surface, generated from the
//! handlers' own annotations and wire types, and served without
//! authentication at `GET /api/v1/openapi.json`.
//!
//! The automation API, the ServiceNow webhook and this route are described
//! by `#[utoipa::path]` on their handlers, so a changed parameter, body or
//! answer changes the document with it. The Bot Framework endpoint and
//! the health routes follow other specifications (Bot Framework activities,
//! plain-text probes) and are listed here with a short description only.
//! A test compares the paths in this document with the router's own route
//! table, so a route cannot be added without being documented.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{Map, Value};
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::AppState;

pub const PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cordon",
        description = "Governed containment of compromised Entra ID accounts. \
            Automation proposes through /api/v1; people approve in Teams.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::api::create,
        super::api::list,
        super::api::show,
        super::webhook::receive,
        serve,
    ),
    modifiers(&SecuritySchemes, &OtherRoutes),
    tags(
        (name = "containments", description = "The automation API"),
        (name = "servicenow", description = "The ServiceNow business rule's webhook"),
        (name = "operations", description = "Health, readiness and this document"),
    )
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(serve))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document",
        content_type = "application/json", body = Object)),
)]
async fn serve() -> Response {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| {
        let json = served_document();
        serde_json::to_string_pretty(json).expect("the document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// The document as JSON, as served.
///
/// utoipa 5 writes the fields of a response's Link Object in snake case
/// (`operation_id`), which OpenAPI tools do not read, so a client or a
/// fuzzer would not know that a proposal's answer leads to the request it
/// names. They are renamed here to the specification's camel case.
pub fn served_document() -> &'static Value {
    static JSON: OnceLock<Value> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_value(document()).expect("the document serializes");
        for link in response_links(&mut json) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.to_owned(), value);
                }
            }
        }
        json
    })
}

/// Every Link Object under `paths.*.*.responses.*.links`.
fn response_links(json: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    json.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|operations| operations.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links"))
        .filter_map(Value::as_object_mut)
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut)
}

/// The bearer tokens of `/api/v1`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `api.tokens` in the configuration"))
                    .build(),
            ),
        );
    }
}

/// The routes whose protocol is defined elsewhere.
struct OtherRoutes;

impl Modify for OtherRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let text = || Content::new(Some(typed(Type::String)));
        let probe = |summary: &str, ok: &str| {
            OperationBuilder::new()
                .tag("operations")
                .summary(Some(summary))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description(ok)
                        .content("text/plain", text()),
                )
        };
        openapi.paths.add_path_operation(
            "/healthz",
            vec![HttpMethod::Get],
            probe("The process answers", "ok").build(),
        );
        openapi.paths.add_path_operation(
            "/readyz",
            vec![HttpMethod::Get],
            probe("The process and its store answer", "ready")
                .response(
                    "503",
                    ResponseBuilder::new()
                        .description("The store does not answer")
                        .content("text/plain", text()),
                )
                .build(),
        );
        openapi.paths.add_path_operation(
            "/metrics",
            vec![HttpMethod::Get],
            probe(
                "Counts and states in the Prometheus text format",
                "The metrics",
            )
            .response(
                "503",
                ResponseBuilder::new()
                    .description("The store does not answer")
                    .content("text/plain", text()),
            )
            .build(),
        );
        let activity = Content::new(Some(typed(Type::Object)));
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(error_body())))
        };
        openapi.paths.add_path_operation(
            "/api/messages",
            vec![HttpMethod::Post],
            OperationBuilder::new()
                .tag("teams")
                .summary(Some("A Bot Framework activity from Teams"))
                .description(Some(
                    "Authenticated with a Bot Framework JWT; the body and the \
                     answers follow the Bot Framework protocol.",
                ))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .content("application/json", activity)
                        .build(),
                ))
                // Not given a content type: most activities are answered
                // with an empty body, and an invoke's JSON answer follows
                // the Bot Framework protocol.
                .response(
                    "200",
                    ResponseBuilder::new().description(
                        "Processed; an `invoke` such as a card click is \
                         answered with its result, other activities with an \
                         empty body",
                    ),
                )
                .response("400", error("The body is not an activity"))
                .response("401", error("No valid Bot Framework token"))
                .response(
                    "403",
                    error("The token is for another bot or the activity for another tenant"),
                )
                .response(
                    "413",
                    error("The body is larger than server.max_body_bytes"),
                )
                .response("500", error("The store failed; the detail is logged"))
                .build(),
        );
        openapi.paths.add_path_operation(
            "/api/messages",
            vec![HttpMethod::Get],
            OperationBuilder::new()
                .tag("teams")
                .summary(Some("Reachability probe of the bot endpoint"))
                .response("200", ResponseBuilder::new().description("Reachable"))
                .build(),
        );
    }
}

/// A reference to the error body every JSON error answer has.
fn error_body() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("ErrorBody"))
}

fn typed(kind: Type) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(kind))
        .into()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The paths in the router's route table. axum keeps no public list of
    /// its routes, but its `Debug` output prints the path router's paths as
    /// quoted strings, before the fallback router's internal ones.
    fn served_paths() -> BTreeSet<String> {
        let debug = format!("{:?}", super::super::routes(&Default::default()));
        let (table, _fallback) = debug
            .split_once("fallback_router")
            .expect("axum prints the path router before the fallback router");
        let paths: BTreeSet<String> = table
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|text| text.starts_with('/'))
            .map(str::to_owned)
            .collect();
        assert!(
            paths.contains("/api/v1/containments"),
            "the route table could not be read: {table}"
        );
        paths
    }

    #[test]
    fn every_route_the_router_serves_is_in_the_document() {
        let documented: BTreeSet<String> = document().paths.paths.keys().cloned().collect();
        let served = served_paths();
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_api_and_the_webhook() {
        let json: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = &json["paths"];
        assert!(paths["/api/v1/containments"]["post"]["responses"]["429"].is_object());
        let webhook = &paths["/api/servicenow/webhook"]["post"];
        let headers: Vec<&str> = webhook["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(headers, ["X-Cordon-Timestamp", "X-Cordon-Signature"]);
        let states = &json["components"]["schemas"]["RequestState"]["enum"];
        assert!(states
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "awaiting_approval"));
    }
}
