//! Conformance: every operation in GitHub's published description (the vendored fragments
//! in `tests/github-openapi/`) is called on a running simulator, and each answer body is
//! validated against the schema GitHub documents for that status. So are `/rate_limit`,
//! the direct job read, errors, and the objects in webhook payloads.
//!
//! The validator is the `jsonschema` crate (JSON Schema 2020-12). OpenAPI 3.0 schemas
//! differ in two ways, converted here: `nullable: true` becomes a `"null"` type (and a
//! `null` enum value), and `$ref: #/components/schemas/X` becomes `#/$defs/X`.

use std::collections::BTreeSet;

use jsonschema::Validator;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::helpers::{ORG, REPO, TestSim, receiver, stand_in, start, start_with, wait_deliveries};

const OPERATIONS: &str = include_str!("../github-openapi/operations.json");
const SCHEMAS: &str = include_str!("../github-openapi/schemas.json");
const RESPONSES: &str = include_str!("../github-openapi/responses.json");

/// `components.responses` the operations name that the fragments do not carry: in
/// GitHub's description each is a `basic-error` or `validation-error-simple` body.
const SHARED_RESPONSES: [(&str, &str); 3] = [
    ("not_found", "basic-error"),
    ("conflict", "basic-error"),
    ("validation_failed_simple", "validation-error-simple"),
];

/// The published description, converted for the validator.
struct Spec {
    /// Every schema as JSON Schema, by name.
    defs: Map<String, Value>,
    operations: Value,
    responses: Value,
}

/// OpenAPI 3.0 → JSON Schema 2020-12 (see the module doc).
fn convert(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(convert).collect()),
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("nullable", _) => {}
                    ("$ref", Value::String(target)) => {
                        let name = target
                            .strip_prefix("#/components/schemas/")
                            .unwrap_or_else(|| panic!("unexpected $ref {target}"));
                        out.insert(key.clone(), json!(format!("#/$defs/{name}")));
                    }
                    _ => {
                        out.insert(key.clone(), convert(value));
                    }
                }
            }
            if object.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(kind) = out.get("type").cloned() {
                    out.insert("type".into(), json!([kind, "null"]));
                }
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Names of the schemas `value` refers to.
fn references(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| references(v, into)),
        Value::Object(object) => {
            for (key, value) in object {
                if key == "$ref"
                    && let Some(name) = value
                        .as_str()
                        .and_then(|t| t.strip_prefix("#/components/schemas/"))
                {
                    into.insert(name.to_owned());
                }
                references(value, into);
            }
        }
        _ => {}
    }
}

impl Spec {
    fn load() -> Self {
        let schemas: Value = serde_json::from_str(SCHEMAS).unwrap();
        let schemas = schemas["schemas"].as_object().unwrap();
        let mut defs: Map<String, Value> = schemas
            .iter()
            .map(|(name, schema)| (name.clone(), convert(schema)))
            .collect();
        // A schema referred to but not among the fragments (`authentication-token` names
        // `repository` for its optional `repositories`): `false`, so any such value the
        // simulator ever sent would fail until the schema is vendored too.
        let mut named = BTreeSet::new();
        references(&Value::Object(schemas.clone()), &mut named);
        for name in named {
            defs.entry(name).or_insert(Value::Bool(false));
        }
        Self {
            defs,
            operations: serde_json::from_str(OPERATIONS).unwrap(),
            responses: serde_json::from_str(RESPONSES).unwrap(),
        }
    }

    /// A validator of `schema` (OpenAPI form) with every named schema in reach.
    fn validator(&self, schema: &Value) -> Validator {
        let mut root = match convert(schema) {
            Value::Object(object) => object,
            other => panic!("a schema must be an object: {other}"),
        };
        root.insert("$defs".into(), Value::Object(self.defs.clone()));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .expect("the converted schema compiles")
    }

    /// A validator of the named schema.
    fn named(&self, name: &str) -> Validator {
        assert!(self.defs.contains_key(name), "no schema {name}");
        self.validator(&json!({"$ref": format!("#/components/schemas/{name}")}))
    }

    /// The body schema GitHub documents for `status` of an operation; `None` for a
    /// status it does not document.
    fn response_schema(&self, method: &str, template: &str, status: u16) -> Option<Value> {
        let operation = &self.operations["paths"][template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let response = operation["responses"].get(status.to_string())?;
        let response = match response["$ref"].as_str() {
            Some(target) => {
                let name = target.strip_prefix("#/components/responses/").unwrap();
                if let Some((_, schema)) = SHARED_RESPONSES.iter().find(|(n, _)| *n == name) {
                    return Some(json!({"$ref": format!("#/components/schemas/{schema}")}));
                }
                self.responses["responses"][name].clone()
            }
            None => response.clone(),
        };
        Some(response["content"]["application/json"]["schema"].clone())
    }

    /// Every `(METHOD, template)` the description lists.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut all = BTreeSet::new();
        for (template, methods) in self.operations["paths"].as_object().unwrap() {
            for method in methods.as_object().unwrap().keys() {
                all.insert((method.to_uppercase(), template.clone()));
            }
        }
        all
    }
}

/// Panics with every violation when `body` does not fit `validator`.
fn assert_valid(validator: &Validator, body: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{body:#}");
}

/// Calls operations and checks their answers, remembering which ones it called.
struct Conformance<'a> {
    spec: &'a Spec,
    t: &'a TestSim,
    called: BTreeSet<(String, String)>,
}

impl Conformance<'_> {
    /// Calls `path` (an instance of `template`, under `prefix`), checks the answer against
    /// the documented schema of its status (`basic-error` for an undocumented error), and
    /// returns status and body.
    async fn call(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
        prefix: &str,
    ) -> (StatusCode, Value) {
        self.call_as(crate::helpers::TOKEN, method, template, path, body, prefix)
            .await
    }

    /// [`Conformance::call`] with `credential` (a token, an installation token or a JWT).
    async fn call_as(
        &mut self,
        credential: &str,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
        prefix: &str,
    ) -> (StatusCode, Value) {
        let mut request = self
            .t
            .as_bearer(credential, method.clone(), &format!("{prefix}{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let what = format!("{method} {prefix}{path} → {status}");
        self.called
            .insert((method.as_str().to_owned(), template.to_owned()));
        if status == StatusCode::NO_CONTENT {
            assert!(bytes.is_empty(), "{what}: a 204 has no body");
            assert!(
                self.spec
                    .response_schema(method.as_str(), template, 204)
                    .is_some(),
                "{what}: 204 is not documented"
            );
            return (status, Value::Null);
        }
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {bytes:?}"));
        let schema = match self
            .spec
            .response_schema(method.as_str(), template, status.as_u16())
        {
            Some(schema) => schema,
            None if status.is_client_error() => {
                json!({"$ref": "#/components/schemas/basic-error"})
            }
            None => panic!("{what}: status not documented"),
        };
        assert_valid(&self.spec.validator(&schema), &body, &what);
        (status, body)
    }
}

/// Runs, jobs and runners in every state the schemas have to cover; returns a job, its
/// run, and a busy runner of the repository.
async fn populate(t: &TestSim) -> (u64, u64, u64) {
    let (queued, run) = t.job("octo/app", &["self-hosted", "gpu"], 0).await;
    let (cancelled, _) = t.job("octo/app", &["nobody"], 0).await;
    t.raw(Method::POST, &format!("/_sim/jobs/{cancelled}/cancel"))
        .send()
        .await
        .unwrap();
    let (runner_id, config) = t.jit(REPO, "conformance-busy", &["self-hosted"]).await;
    // Left running (busy) until the test's runtime ends.
    drop(stand_in(config));
    t.wait_online(runner_id).await;
    let (running, _) = t.job("octo/app", &["self-hosted"], 600_000).await;
    t.wait_job_status(running, "in_progress").await;
    (queued, run, runner_id)
}

#[tokio::test]
async fn every_documented_operation_answers_in_its_schema() {
    let spec = Spec::load();
    let key = test_support::RsaKeyPair::generate();
    let t = crate::apps::start_with_app(&key).await;
    let (job_id, run_id, busy_id) = populate(&t).await;
    let mut c = Conformance {
        spec: &spec,
        t: &t,
        called: BTreeSet::new(),
    };

    for prefix in ["", "/api/v3"] {
        for (scope, template_scope) in [(REPO, "/repos/{owner}/{repo}"), (ORG, "/orgs/{org}")] {
            let runners = format!("{template_scope}/actions/runners");
            let jit = format!("{runners}/generate-jitconfig");
            let name = format!("conf-{}{}", prefix.len(), scope.len());
            let good = json!({"name": name, "runner_group_id": 1, "labels": ["self-hosted"]});
            let path = format!("{scope}/actions/runners/generate-jitconfig");
            let (status, body) = c
                .call(Method::POST, &jit, &path, Some(good.clone()), prefix)
                .await;
            assert_eq!(status, StatusCode::CREATED);
            let id = body["runner"]["id"].as_u64().unwrap();
            let (status, _) = c.call(Method::POST, &jit, &path, Some(good), prefix).await;
            assert_eq!(status, StatusCode::CONFLICT);
            let (status, _) = c
                .call(
                    Method::POST,
                    &jit,
                    &path,
                    Some(json!({"name": "x"})),
                    prefix,
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            let unknown_group = json!({"name": "y", "runner_group_id": 9, "labels": ["a"]});
            let (status, _) = c
                .call(Method::POST, &jit, &path, Some(unknown_group), prefix)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND);

            for kind in ["registration-token", "remove-token"] {
                let (status, _) = c
                    .call(
                        Method::POST,
                        &format!("{runners}/{kind}"),
                        &format!("{scope}/actions/runners/{kind}"),
                        None,
                        prefix,
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED);
            }

            let list = format!("{scope}/actions/runners");
            let (status, body) = c.call(Method::GET, &runners, &list, None, prefix).await;
            assert_eq!(status, StatusCode::OK);
            assert!(!body["runners"].as_array().unwrap().is_empty());

            let one = format!("{runners}/{{runner_id}}");
            for (runner, expected) in [(id, StatusCode::OK), (999_999, StatusCode::NOT_FOUND)] {
                let (status, _) = c
                    .call(Method::GET, &one, &format!("{list}/{runner}"), None, prefix)
                    .await;
                assert_eq!(status, expected);
            }
            let (status, _) = c
                .call(Method::DELETE, &one, &format!("{list}/{id}"), None, prefix)
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            if scope == REPO {
                let (status, _) = c
                    .call(
                        Method::DELETE,
                        &one,
                        &format!("{list}/{busy_id}"),
                        None,
                        prefix,
                    )
                    .await;
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            }
        }

        let runs = "/repos/{owner}/{repo}/actions/runs";
        for query in [
            "",
            "?status=queued",
            "?status=in_progress",
            "?status=completed",
        ] {
            let path = format!("{REPO}/actions/runs{query}");
            let (status, body) = c.call(Method::GET, runs, &path, None, prefix).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body["total_count"].as_u64().unwrap() >= 1, "{path}");
        }
        let jobs = "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs";
        let path = format!("{REPO}/actions/runs/{run_id}/jobs");
        let (status, _) = c.call(Method::GET, jobs, &path, None, prefix).await;
        assert_eq!(status, StatusCode::OK);

        // The GitHub App's endpoints, with its JWT.
        let jwt = crate::apps::good_jwt(&key);
        let (status, list) = c
            .call_as(
                &jwt,
                Method::GET,
                "/app/installations",
                "/app/installations",
                None,
                prefix,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 2);
        for (template, path, expected) in [
            (
                "/repos/{owner}/{repo}/installation",
                format!("{REPO}/installation"),
                StatusCode::OK,
            ),
            (
                "/repos/{owner}/{repo}/installation",
                "/repos/ghost/app/installation".to_owned(),
                StatusCode::NOT_FOUND,
            ),
            (
                "/orgs/{org}/installation",
                format!("{ORG}/installation"),
                StatusCode::OK,
            ),
            (
                "/users/{username}/installation",
                "/users/octo/installation".to_owned(),
                StatusCode::OK,
            ),
        ] {
            let (status, _) = c
                .call_as(&jwt, Method::GET, template, &path, None, prefix)
                .await;
            assert_eq!(status, expected, "{path}");
        }
        let tokens = "/app/installations/{installation_id}/access_tokens";
        let installation = list[0]["id"].as_u64().unwrap();
        for (id, expected) in [
            (installation, StatusCode::CREATED),
            (7, StatusCode::NOT_FOUND),
        ] {
            let path = format!("/app/installations/{id}/access_tokens");
            let (status, _) = c
                .call_as(&jwt, Method::POST, tokens, &path, None, prefix)
                .await;
            assert_eq!(status, expected, "{path}");
        }
        let path = format!("/app/installations/{installation}/access_tokens");
        let (status, _) = c.call(Method::POST, tokens, &path, None, prefix).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a token is not a JWT");
    }

    assert_eq!(
        c.called,
        spec.operations(),
        "every documented operation, and only those, was called"
    );

    // Beyond the fragments' operations: the direct job read, /rate_limit, errors.
    let job = spec.named("job");
    for prefix in ["", "/api/v3"] {
        let r = t
            .gh(
                Method::GET,
                &format!("{prefix}{REPO}/actions/jobs/{job_id}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_valid(&job, &r.json().await.unwrap(), "direct job read");
        let r = t
            .gh(Method::GET, &format!("{prefix}/rate_limit"))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_valid(&spec.named("rate-limit-overview"), &body, "/rate_limit");
        assert!(body["resources"]["actions_runner_registration"].is_object());
    }
    let r = t
        .client
        .get(format!("{}{REPO}/actions/runners", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_valid(&spec.named("basic-error"), &r.json().await.unwrap(), "401");
    let r = t
        .gh(Method::GET, &format!("{REPO}/actions/runs?status=bogus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.json().await.unwrap();
    assert_valid(&spec.named("validation-error-simple"), &body, "422");
    t.sim.shutdown().await;
}

#[tokio::test]
async fn webhook_payload_objects_have_githubs_fields() {
    let spec = Spec::load();
    let (url, received) = receiver().await;
    let t = start_with(|c| c.webhook_url = Some(url)).await;
    t.job("acme/web", &["x"], 0).await;
    t.job("octo/app", &["x"], 0).await;
    let got = wait_deliveries(&received, 3).await;
    let (job, repository, user) = (
        spec.named("job"),
        spec.named("minimal-repository"),
        spec.named("simple-user"),
    );
    // `organization-simple` (not among the fragments): the fields GitHub requires.
    let organization = spec.validator(&json!({
        "type": "object",
        "required": ["login", "id", "node_id", "url", "repos_url", "events_url", "hooks_url",
                     "issues_url", "members_url", "public_members_url", "avatar_url",
                     "description"],
        "properties": {"description": {"type": "string", "nullable": true}},
    }));
    let ping: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_valid(&user, &ping["sender"], "ping sender");
    for (_, body) in &got[1..] {
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_valid(&job, &payload["workflow_job"], "workflow_job");
        assert_valid(&repository, &payload["repository"], "repository");
        assert_valid(&user, &payload["sender"], "sender");
        assert_valid(&user, &payload["repository"]["owner"], "repository owner");
        if let Some(org) = payload.get("organization") {
            assert_valid(&organization, org, "organization");
        }
    }
    let orgs = got[1..]
        .iter()
        .filter(|(_, b)| {
            serde_json::from_slice::<Value>(b)
                .unwrap()
                .get("organization")
                .is_some()
        })
        .count();
    assert_eq!(orgs, 1, "only the organization's repository has one");
    t.sim.shutdown().await;
}

/// The check can fail: objects that break the schemas in each way it converts are refused.
#[tokio::test]
async fn broken_objects_fail_validation() {
    let spec = Spec::load();
    let t = start().await;
    let (job_id, _) = t.job("octo/app", &["x"], 0).await;
    let good: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/jobs/{job_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = spec.named("job");
    assert!(job.is_valid(&good));
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut value = good.clone();
        edit(&mut value);
        value
    };
    // A required field missing, a wrong type, a value outside an enum, null where the
    // schema is not nullable, a bad date-time.
    for bad in [
        broken(&|v| {
            v.as_object_mut().unwrap().remove("head_sha");
        }),
        broken(&|v| v["id"] = json!("500001")),
        broken(&|v| v["status"] = json!("sleeping")),
        broken(&|v| v["conclusion"] = json!("great")),
        broken(&|v| v["name"] = Value::Null),
        broken(&|v| v["created_at"] = json!("yesterday")),
    ] {
        assert!(!job.is_valid(&bad), "accepted: {bad}");
    }
    // Null where the schema says nullable (a plain type, an enum) is fine.
    for fine in [
        broken(&|v| v["runner_id"] = Value::Null),
        broken(&|v| v["conclusion"] = Value::Null),
    ] {
        assert!(job.is_valid(&fine), "refused: {fine}");
    }
    let run: Value = t
        .gh(Method::GET, &format!("{REPO}/actions/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut run = run["workflow_runs"][0].clone();
    let workflow_run = spec.named("workflow-run");
    assert!(workflow_run.is_valid(&run));
    // Through $ref: a nullable referenced schema, and a broken nested repository.
    run["head_commit"] = Value::Null;
    assert!(workflow_run.is_valid(&run));
    run["repository"]
        .as_object_mut()
        .unwrap()
        .remove("hooks_url");
    assert!(!workflow_run.is_valid(&run));
    // A schema the fragments only name refuses anything.
    let token = spec.named("authentication-token");
    let with_repositories = json!({"token": "t", "expires_at": "2030-01-01T00:00:00Z",
                                   "repositories": [{"id": 1}]});
    assert!(!token.is_valid(&with_repositories));
    t.sim.shutdown().await;
}
