//! The API's OpenAPI 3.1 description, served at `GET /api/openapi.json`:
//! the table [`ENDPOINTS`] names every endpoint with its methods, what it
//! takes and what it answers, and the schemas come from the wire types of
//! [`dpxdt_core::api`] (`utoipa::ToSchema`). The routes take their methods
//! from the same table ([`methods`]), so an endpoint cannot be served
//! without being described.

use std::borrow::Cow;

use dpxdt_core::api;
use utoipa::ToSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required};
use warp::http::Method;

/// Named schemas, gathered as the endpoints are described.
type Schemas = Vec<(String, RefOr<Schema>)>;

/// A reference to `T`'s schema, with `T` and every type it names added to
/// `schemas`.
fn schema<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    let name: Cow<'static, str> = T::name();
    schemas.push((name.to_string(), T::schema()));
    T::schemas(schemas);
    Ref::from_schema_name(name).into()
}

/// What an endpoint takes.
#[derive(Clone, Copy)]
pub enum Takes {
    /// Fields of this type: a form body for POST, the query for GET.
    Fields(fn(&mut Schemas) -> RefOr<Schema>, fn() -> RefOr<Schema>),
    /// A multipart form with `build_id` and one file.
    Upload,
    /// Nothing.
    Nothing,
}

/// What an endpoint answers with on success.
#[derive(Clone, Copy)]
pub enum Gives {
    /// A JSON object of this type.
    Json(fn(&mut Schemas) -> RefOr<Schema>),
    /// An artifact's bytes.
    Bytes,
    /// This document.
    Document,
}

/// Who may call an endpoint, for the description.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Anyone, without a key.
    Anyone,
    /// An API key of the build named in the call, or a superuser key.
    BuildKey,
    /// A superuser key only.
    Superuser,
    /// A key of the build, a worker key (for the task it holds) or a
    /// superuser key.
    Worker,
    /// A worker key or a superuser key.
    WorkerKey,
}

/// One endpoint: its path under `/api/`, its methods, and what it does.
pub struct Endpoint {
    /// The path under `/api/`; `{queue}` stands for a work queue's name.
    pub path: &'static str,
    /// The methods it takes.
    pub methods: &'static [Method],
    /// One line for people.
    pub summary: &'static str,
    /// Who may call it.
    pub who: Who,
    /// What it takes.
    pub takes: Takes,
    /// What it answers with.
    pub gives: Gives,
}

macro_rules! fields {
    ($t:ty) => {
        Takes::Fields(schema::<$t>, <$t as utoipa::PartialSchema>::schema)
    };
}

const POST: &[Method] = &[Method::POST];
const GET: &[Method] = &[Method::GET];
const GET_OR_POST: &[Method] = &[Method::GET, Method::POST];

/// Every endpoint of the API.
pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "create_release",
        methods: POST,
        summary: "Starts a release: a name used before gets the next number.",
        who: Who::BuildKey,
        takes: fields!(api::CreateReleaseRequest),
        gives: Gives::Json(schema::<api::CreateReleaseResponse>),
    },
    Endpoint {
        path: "find_run",
        methods: POST,
        summary: "The run of that name in the newest good release (of the branch, else the default one).",
        who: Who::BuildKey,
        takes: fields!(api::FindRunRequest),
        gives: Gives::Json(schema::<api::FindRunResponse>),
    },
    Endpoint {
        path: "request_run",
        methods: POST,
        summary: "Asks the server to capture a page (and its reference) and diff them; one run per mode.",
        who: Who::BuildKey,
        takes: fields!(api::RequestRunRequest),
        gives: Gives::Json(schema::<api::RequestRunResponse>),
    },
    Endpoint {
        path: "upload",
        methods: POST,
        summary: "Stores a file (a screenshot, a log, a config) as an artifact of the build.",
        who: Who::Worker,
        takes: Takes::Upload,
        gives: Gives::Json(schema::<api::UploadResponse>),
    },
    Endpoint {
        path: "report_run",
        methods: POST,
        summary: "Reports a run's screenshot, reference, diff or failure; may be called several times.",
        who: Who::Worker,
        takes: fields!(api::ReportRunRequest),
        gives: Gives::Json(schema::<api::SuccessResponse>),
    },
    Endpoint {
        path: "runs_done",
        methods: POST,
        summary: "Says every run of the release has been requested or reported.",
        who: Who::BuildKey,
        takes: fields!(api::RunsDoneRequest),
        gives: Gives::Json(schema::<api::RunsDoneResponse>),
    },
    Endpoint {
        path: "release_status",
        methods: GET_OR_POST,
        summary: "A release's state, its runs counted by state, and what each run was compared with.",
        who: Who::BuildKey,
        takes: fields!(api::ReleaseStatusRequest),
        gives: Gives::Json(schema::<api::ReleaseStatusResponse>),
    },
    Endpoint {
        path: "download",
        methods: GET,
        summary: "An artifact's bytes (304 when If-None-Match names it).",
        who: Who::Worker,
        takes: fields!(api::DownloadRequest),
        gives: Gives::Bytes,
    },
    Endpoint {
        path: "update_release",
        methods: POST,
        summary: "A verdict on a release: good, bad, or back to reviewing.",
        who: Who::BuildKey,
        takes: fields!(api::UpdateReleaseRequest),
        gives: Gives::Json(schema::<api::UpdateReleaseResponse>),
    },
    Endpoint {
        path: "review_run",
        methods: POST,
        summary: "A verdict on one run: approve, reject (a regression, with a reason) or clear.",
        who: Who::BuildKey,
        takes: fields!(api::ReviewRunRequest),
        gives: Gives::Json(schema::<api::ReviewRunResponse>),
    },
    Endpoint {
        path: "comment",
        methods: POST,
        summary: "Adds a comment to a run's thread, optionally about a rectangle of its new image.",
        who: Who::BuildKey,
        takes: fields!(api::CommentRequest),
        gives: Gives::Json(schema::<api::CommentResponse>),
    },
    Endpoint {
        path: "create_build",
        methods: POST,
        summary: "Creates a build.",
        who: Who::Superuser,
        takes: fields!(api::CreateBuildRequest),
        gives: Gives::Json(schema::<api::CreateBuildResponse>),
    },
    Endpoint {
        path: "create_api_key",
        methods: POST,
        summary: "Creates an API key scoped to one build; the secret is shown this once.",
        who: Who::Superuser,
        takes: fields!(api::CreateApiKeyRequest),
        gives: Gives::Json(schema::<api::CreateApiKeyResponse>),
    },
    Endpoint {
        path: "revoke_api_key",
        methods: POST,
        summary: "Revokes one API key of a build (a key may revoke itself or a sibling).",
        who: Who::BuildKey,
        takes: fields!(api::RevokeApiKeyRequest),
        gives: Gives::Json(schema::<api::RevokeApiKeyResponse>),
    },
    Endpoint {
        path: "work_queue/{queue}/add",
        methods: POST,
        summary: "Adds a task to a work queue.",
        who: Who::Superuser,
        takes: fields!(api::AddTaskRequest),
        gives: Gives::Json(schema::<api::AddTaskResponse>),
    },
    Endpoint {
        path: "work_queue/{queue}/lease",
        methods: POST,
        summary: "Leases up to `count` waiting tasks, oldest first.",
        who: Who::WorkerKey,
        takes: fields!(api::LeaseRequest),
        gives: Gives::Json(schema::<api::LeaseResponse>),
    },
    Endpoint {
        path: "work_queue/{queue}/heartbeat",
        methods: POST,
        summary: "Extends a held lease and records progress.",
        who: Who::WorkerKey,
        takes: fields!(api::HeartbeatRequest),
        gives: Gives::Json(schema::<api::SuccessResponse>),
    },
    Endpoint {
        path: "work_queue/{queue}/finish",
        methods: POST,
        summary: "Ends a held task, done or failed (a failed task is retried until its attempts run out).",
        who: Who::WorkerKey,
        takes: fields!(api::FinishRequest),
        gives: Gives::Json(schema::<api::SuccessResponse>),
    },
    Endpoint {
        path: "work_queue/{queue}/cancel",
        methods: POST,
        summary: "Cancels a task.",
        who: Who::Superuser,
        takes: fields!(api::CancelTaskRequest),
        gives: Gives::Json(schema::<api::SuccessResponse>),
    },
    Endpoint {
        path: "openapi.json",
        methods: GET,
        summary: "This description of the API.",
        who: Who::Anyone,
        takes: Takes::Nothing,
        gives: Gives::Document,
    },
];

/// The methods of the endpoint at `path` (under `/api/`), if there is one.
pub fn described(path: &str) -> Option<&'static [Method]> {
    ENDPOINTS.iter().find(|e| e.path == path).map(|e| e.methods)
}

/// The methods of the endpoint at `path`, for the routes: every route is
/// described, so a missing description stops the server at its start.
pub fn methods(path: &str) -> &'static [Method] {
    described(path).unwrap_or_else(|| panic!("/api/{path} is served but not in openapi::ENDPOINTS"))
}

/// The metrics label of an API request path: the endpoint's first path
/// segment (`report_run`, `work_queue`), or `other` for a path that names
/// none, so that labels are a known few whatever path was asked for.
pub fn route_label(path: &str) -> &'static str {
    let first = path
        .strip_prefix("/api/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    ENDPOINTS
        .iter()
        .filter_map(|e| e.path.split('/').next())
        .find(|r| *r == first)
        .unwrap_or("other")
}

/// The work queue actions, for error messages.
pub fn work_queue_actions() -> Vec<&'static str> {
    ENDPOINTS
        .iter()
        .filter_map(|e| e.path.strip_prefix("work_queue/{queue}/"))
        .collect()
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::new();
    let error = schema::<api::ErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new();
    for e in ENDPOINTS {
        for method in e.methods {
            let op = operation(e, method, &error, &mut schemas);
            let http = if *method == Method::GET {
                HttpMethod::Get
            } else {
                HttpMethod::Post
            };
            paths = paths.path(format!("/api/{}", e.path), PathItem::new(http, op));
        }
    }
    let basic = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "An API key: its id as the user name, its secret as the password.",
            ))
            .build(),
    );
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme("api_key", basic)
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Depicted (dpxdt) API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Requests are forms (url-encoded or multipart), replies JSON with \
                     `success: true`, or `success: false` and an `error` for people with \
                     a 4xx or 5xx status. Every reply carries an `X-Request-Id`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .security(Some([SecurityRequirement::new(
            "api_key",
            Vec::<String>::new(),
        )]))
        .build()
}

/// One method of one endpoint.
fn operation(
    e: &Endpoint,
    method: &Method,
    error: &RefOr<Schema>,
    schemas: &mut Schemas,
) -> Operation {
    let id = format!(
        "{}{}",
        e.path.replace("/{queue}/", "_").replace(".json", ""),
        if e.methods.len() > 1 {
            format!("_{}", method.as_str().to_ascii_lowercase())
        } else {
            String::new()
        }
    );
    let who = match e.who {
        Who::Anyone => "Anyone, without a key.",
        Who::BuildKey => "A key of the build, or a superuser key.",
        Who::Superuser => "A superuser key.",
        Who::Worker => {
            "A key of the build, a worker key for the task it holds, or a superuser key."
        }
        Who::WorkerKey => "A worker key or a superuser key.",
    };
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(e.summary))
        .description(Some(who));
    if e.who == Who::Anyone {
        op = op.security(SecurityRequirement::default());
    }
    if e.path.contains("{queue}") {
        op = op.parameter(
            ParameterBuilder::new()
                .name("queue")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The work queue, e.g. `capture` or `run-pdiff`."))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    op = match e.takes {
        Takes::Fields(_, inline) if *method == Method::GET => {
            op.parameters(Some(query_parameters(inline())))
        }
        Takes::Fields(named, _) => op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/x-www-form-urlencoded",
                    ContentBuilder::new().schema(Some(named(schemas))).build(),
                )
                .build(),
        )),
        Takes::Upload => op.request_body(Some(upload_body())),
        Takes::Nothing => op,
    };
    let ok = match e.gives {
        Gives::Json(named) => ResponseBuilder::new().description("Done.").content(
            "application/json",
            ContentBuilder::new().schema(Some(named(schemas))).build(),
        ),
        Gives::Bytes => ResponseBuilder::new()
            .description(
                "The artifact's bytes, with the content type it was stored with and its id \
                 as the ETag.",
            )
            .content(
                "*/*",
                ContentBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .content_media_type("application/octet-stream"),
                    ))
                    .build(),
            ),
        Gives::Document => ResponseBuilder::new()
            .description("An OpenAPI 3.1 document.")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                    .build(),
            ),
    };
    op = op.response("200", ok.build());
    if matches!(e.gives, Gives::Bytes) {
        op = op.response(
            "304",
            ResponseBuilder::new()
                .description("Not modified: the request's If-None-Match names it.")
                .build(),
        );
    }
    if e.who != Who::Anyone {
        op = op.response(
            "default",
            ResponseBuilder::new()
                .description(
                    "Refused: 400 bad input, 401 no or a wrong key, 403 not allowed, 404 no \
                     such thing, 405 wrong method, 409 a conflicting state, 413 too large, \
                     429 too many, 5xx the server's fault.",
                )
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(error.clone())).build(),
                )
                .build(),
        );
    }
    op.build()
}

/// The fields of an object schema as query parameters.
fn query_parameters(schema: RefOr<Schema>) -> Vec<utoipa::openapi::path::Parameter> {
    let RefOr::T(Schema::Object(object)) = schema else {
        return Vec::new();
    };
    object
        .properties
        .iter()
        .map(|(name, field)| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if object.required.contains(name) {
                    Required::True
                } else {
                    Required::False
                })
                .schema(Some(field.clone()))
                .build()
        })
        .collect()
}

/// `upload`'s multipart body: the build and one file.
fn upload_body() -> utoipa::openapi::request_body::RequestBody {
    let form = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "build_id",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .description(Some("The build.")),
        )
        .required("build_id")
        .property(
            "file",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/octet-stream")
                .description(Some(
                    "The file; its name's extension or its bytes give its content type.",
                )),
        )
        .required("file");
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "multipart/form-data",
            ContentBuilder::new().schema(Some(form)).build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reference in the document names a schema it has.
    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(document()).expect("json");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 20, "{refs:?}");
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(schemas.contains_key(name), "{r} is not in the document");
        }
        assert_eq!(
            doc["paths"]["/api/release_status"]["get"]["parameters"][0]["in"],
            "query"
        );
        assert_eq!(
            work_queue_actions(),
            ["add", "lease", "heartbeat", "finish", "cancel"]
        );
    }

    #[test]
    fn a_route_label_is_one_of_the_endpoints_or_other() {
        assert_eq!(route_label("/api/report_run"), "report_run");
        assert_eq!(route_label("/api/work_queue/run-pdiff/lease"), "work_queue");
        assert_eq!(route_label("/api/openapi.json"), "openapi.json");
        assert_eq!(route_label("/api/../../etc/passwd"), "other");
        assert_eq!(route_label("/api/report_run_and_more"), "other");
        assert_eq!(route_label("/metrics"), "other");
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| collect_refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
