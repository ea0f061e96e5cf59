//! Health, readiness, metrics, API documentation and request ids.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    app.state.pool.close().await;
    let app_pool_closed = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(app_pool_closed.status(), StatusCode::SERVICE_UNAVAILABLE);

    // A read, or a keyed request, that needs the database says it is out
    // of reach and when to try again; an unkeyed movement stays a 500 (sent
    // again, it might move money twice).
    let read = app.get("/api/v1/wallet/balances", &user).await;
    let keyed = app
        .request(reqwest::Method::POST, "/api/v1/wallet/send", Some(&user))
        .header("Idempotency-Key", "out-of-reach")
        .json(&serde_json::json!({"to_phone": ADMIN_PHONE, "amount": 100, "currency": "KES"}))
        .send()
        .await
        .unwrap();
    for answer in [read, keyed] {
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        assert_eq!(answer.headers()["retry-after"], "2");
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "service_unavailable");
        assert_eq!(problem["status"], 503);
    }
    let unkeyed = app.send(&user, ADMIN_PHONE, 100, "KES").await;
    // A key sent to a route that takes none makes no retry safe.
    let key_ignored = app
        .request(reqwest::Method::POST, "/api/v1/auth/login", None)
        .header("Idempotency-Key", "ignored")
        .json(&serde_json::json!({"phone": USER_PHONE, "pin": DEMO_PIN}))
        .send()
        .await
        .unwrap();
    for answer in [unkeyed, key_ignored] {
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(answer.headers().get("retry-after").is_none());
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_transfers() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    app.send(&user, ADMIN_PHONE, 100, "KES").await;
    let text = app.metrics().await;
    assert!(text.contains(r#"chainpay_http_requests_total{method="POST",route="/api/v1/wallet/send",status="201"} 1"#), "{text}");
    assert!(text.contains("chainpay_http_request_duration_seconds_bucket"));
    assert!(
        text.contains(
            r#"chainpay_transfers_total{currency="KES",outcome="completed",type="transfer"} 1"#
        ),
        "{text}"
    );
    // The posting engine's batch, and where its time went.
    assert!(
        text.contains("chainpay_posting_batches_total 1\n"),
        "{text}"
    );
    assert!(text.contains("chainpay_posting_batch_transfers_total 1\n"));
    for phase in chainpay_gateway::metrics::POSTING_PHASES {
        let series = format!(r#"chainpay_posting_batch_phase_seconds_total{{phase="{phase}"}} "#);
        let seconds = text
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|seconds| seconds.parse::<f64>().ok());
        assert!(seconds.is_some_and(|s| s >= 0.0), "{phase}: {text}");
        if phase == "commit" {
            assert!(seconds.is_some_and(|s| s > 0.0), "a commit takes time");
        }
    }
}

#[tokio::test]
async fn every_request_gets_a_request_id_and_unknown_routes_are_problems() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert!(!response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .is_empty());
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn the_request_id_is_recorded_on_audit_rows() {
    let app = spawn_app().await;
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-request-id", "trace-me-42")
        .json(&serde_json::json!({"phone": USER_PHONE, "pin": DEMO_PIN}))
        .send()
        .await
        .unwrap();
    let request_id: Option<String> =
        sqlx::query_scalar("SELECT request_id FROM audit_log WHERE action = 'auth.login'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(request_id.as_deref(), Some("trace-me-42"));
}

#[tokio::test]
async fn the_openapi_document_covers_every_api_route() {
    let app = spawn_app().await;
    let spec: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let documented: Vec<String> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let expected = [
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/change-pin",
        "POST /api/v1/auth/logout-all",
        "GET /api/v1/wallet/balances",
        "POST /api/v1/wallet/send",
        "GET /api/v1/wallet/transactions",
        "GET /api/v1/transactions/{tx_id}",
        "GET /api/v1/admin/stats",
        "GET /api/v1/admin/overview",
        "GET /api/v1/kyc/documents",
        "POST /api/v1/kyc/documents",
        "GET /api/v1/admin/kyc/documents",
        "POST /api/v1/admin/users/{id}/pin-reset",
        "GET /api/v1/admin/agents",
        "POST /api/v1/admin/agents",
        "POST /api/v1/admin/agents/{agent_number}/suspend",
        "POST /api/v1/admin/agents/{agent_number}/reinstate",
        "GET /api/v1/admin/treasury/issuances",
        "POST /api/v1/admin/treasury/issuances",
        "POST /api/v1/admin/treasury/issuances/{id}/approve",
        "POST /api/v1/admin/treasury/issuances/{id}/reject",
        "GET /api/v1/admin/vouchers",
        "POST /api/v1/agent/cash-in",
        "GET /api/v1/agent/cash-in/preview",
        "GET /api/v1/agent/summary",
        "POST /api/v1/agent/vouchers/redeem",
        "GET /api/v1/vouchers",
        "POST /api/v1/vouchers",
        "GET /api/v1/vouchers/authority",
        "POST /api/v1/vouchers/redeem",
        "POST /api/v1/vouchers/{id}/cancel",
        "GET /api/v1/wallet/withdraw/preview",
        "GET /api/v1/admin/fees",
        "GET /api/v1/admin/users/{id}",
        "GET /api/v1/admin/sars/{id}",
        "GET /api/v1/admin/users",
        "POST /api/v1/admin/users/{id}/suspend",
        "POST /api/v1/admin/users/{id}/unsuspend",
        "POST /api/v1/admin/users/{id}/unlock",
        "POST /api/v1/admin/users/{id}/kyc",
        "GET /api/v1/admin/ledger/check",
        "GET /api/v1/openapi.json",
        "GET /api/v1/wallet/send/preview",
        "POST /api/v1/wallet/convert",
        "GET /api/v1/fx/rates",
        "GET /api/v1/fx/quote",
        "GET /api/v1/admin/fx/rates",
        "PUT /api/v1/admin/fx/rates",
        "GET /api/v1/admin/suspicious",
        "POST /api/v1/admin/sars/{id}",
        "GET /api/v1/admin/sanctions",
        "POST /api/v1/admin/sanctions",
        "GET /api/v1/admin/audit-log",
        "GET /api/v1/admin/audit-log/verify",
        "GET /api/v1/blockchain/stats",
        "GET /api/v1/blockchain/blocks",
        "GET /api/v1/blockchain/blocks/{index}",
        "POST /api/v1/blockchain/mine",
        "GET /api/v1/blockchain/validate",
        "GET /api/v1/blockchain/proof/{tx_id}",
        "GET /api/v1/blockchain/authorities",
        "GET /api/v1/reversal/eligible",
        "POST /api/v1/reversal/request",
        "POST /api/v1/ussd",
        "POST /api/v1/sms/inbound",
        "POST /api/v1/sms/delivery",
        "GET /api/v1/admin/reversals",
        "POST /api/v1/admin/reversals/{id}/approve",
        "POST /api/v1/admin/reversals/{id}/reject",
        "GET /api/v1/admin/sms-outbox",
        "GET /api/v1/admin/mpesa-transactions",
        "POST /api/v1/mpesa/initiate",
        "POST /api/v1/mpesa/callback",
        "POST /api/v1/mpesa/b2c/result",
        "POST /api/v1/mpesa/b2c/timeout",
        "POST /api/v1/mpesa/txstatus/result",
        "POST /api/v1/mpesa/txstatus/timeout",
        "POST /api/v1/mpesa/balance/result",
        "POST /api/v1/mpesa/balance/timeout",
        "GET /api/v1/admin/reconciliation/runs",
        "POST /api/v1/admin/reconciliation/runs",
        "GET /api/v1/admin/reconciliation/runs/{id}",
        "GET /api/v1/admin/reconciliation/suspense",
        "POST /api/v1/admin/reconciliation/items/{id}/propose",
        "POST /api/v1/admin/reconciliation/items/{id}/approve",
        "POST /api/v1/admin/reconciliation/items/{id}/reject",
        "GET /api/v1/admin/merchants",
        "POST /api/v1/admin/merchants",
        "POST /api/v1/admin/merchants/{id}/suspend",
        "POST /api/v1/admin/merchants/{id}/reinstate",
        "POST /api/v1/wallet/pay",
        "GET /api/v1/wallet/pay/preview",
        "GET /api/v1/merchant",
        "GET /api/v1/merchant/payments",
        "POST /api/v1/merchant/refunds",
        "GET /api/v1/merchant/api-keys",
        "POST /api/v1/merchant/api-keys",
        "DELETE /api/v1/merchant/api-keys/{key_id}",
        "POST /api/v1/merchant/webhooks",
        "DELETE /api/v1/merchant/webhooks/{id}",
        "GET /api/v1/merchant/webhooks/{id}/deliveries",
        "POST /api/v1/merchant/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        "GET /api/v1/mpesa/status/{ref}",
        "GET /api/v1/mpesa/history",
        "POST /api/v1/wallet/deposit",
        "POST /api/v1/wallet/withdraw",
        "POST /api/v1/merchant/payment-requests",
        "GET /api/v1/merchant/payment-requests/{id}",
        "GET /api/v1/payment-requests",
        "POST /api/v1/payment-requests/{id}/approve",
        "POST /api/v1/payment-requests/{id}/decline",
        "POST /api/v1/merchant/withdrawals",
        "GET /api/v1/merchant/webhooks",
        "GET /api/v1/admin/merchants/{id}",
        "POST /api/v1/admin/mpesa/withdrawals/{ref}/resolutions",
        "GET /api/v1/admin/mpesa/resolutions",
        "POST /api/v1/admin/mpesa/resolutions/{id}/approve",
        "POST /api/v1/admin/mpesa/resolutions/{id}/reject",
        "GET /api/v1/admin/mpesa/contradictions",
        "POST /api/v1/admin/mpesa/contradictions/{id}/corrections",
        "GET /api/v1/admin/mpesa/corrections",
        "POST /api/v1/admin/mpesa/corrections/{id}/approve",
        "POST /api/v1/admin/mpesa/corrections/{id}/reject",
    ];
    for route in expected {
        assert!(
            documented.contains(&route.to_owned()),
            "{route} missing from {documented:?}"
        );
    }
    assert_eq!(documented.len(), expected.len(), "{documented:?}");
    // Every route tells its errors: 401 where a token is needed, 400 where
    // the caller sends a body, a path or a query.
    let mut untold = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let secured = op
                .get("security")
                .is_some_and(|s| !s.as_array().unwrap().is_empty());
            let takes_input = op.get("requestBody").is_some()
                || op["parameters"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["in"] != "header"));
            if secured && !responses.contains_key("401") {
                untold.push(format!("{method} {path}: 401"));
            }
            if takes_input && !responses.contains_key("400") {
                untold.push(format!("{method} {path}: 400"));
            }
            for (status, response) in responses.iter().filter(|(s, _)| s.as_str() >= "400") {
                let content = response["content"].as_object();
                if content.is_some_and(|c| c.keys().any(|k| k != "application/problem+json")) {
                    untold.push(format!("{method} {path}: {status} is problem+json"));
                }
            }
        }
    }
    assert!(untold.is_empty(), "undocumented errors: {untold:#?}");
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());

    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    let init = init.text().await.unwrap();
    assert!(
        init.contains("/api/v1/openapi.json") && init.contains("tryItOutEnabled"),
        "{init}"
    );
    let console = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(console.status(), StatusCode::OK);
}

#[tokio::test]
async fn housekeeping_prunes_what_has_served_its_purpose_and_nothing_recent() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    app.send(&user, ADMIN_PHONE, 100, "KES").await;
    for statement in [
        "INSERT INTO ussd_sessions (session_id, phone, state, step, last_reply, created_at, updated_at)
         VALUES ('old', '+254700000001', '{\"at\":\"ended\"}', 1, 'END bye', now() - interval '2 days',
                 now() - interval '2 days'),
                ('live', '+254700000001', '{\"at\":\"home\"}', 0, 'CON hi', now(), now())",
        // A minute's limit idle for two hours is over; a day's is not.
        "INSERT INTO rate_limits (bucket, hits, window_s)
         VALUES ('ip:old', ARRAY[now() - interval '2 hours'], 60), ('ip:new', ARRAY[now()], 60),
                ('merchant_setup:quiet', ARRAY[now() - interval '2 hours'], 86400),
                ('kyc:done', ARRAY[now() - interval '25 hours'], 86400)",
        "INSERT INTO revoked_tokens (jti, user_id, expires_at)
         SELECT gen_random_uuid(), id, now() - interval '1 minute' FROM users WHERE phone = '+254700000001'",
    ] {
        sqlx::query(statement).execute(&app.pool).await.unwrap();
    }
    let removed = chainpay_gateway::housekeeping::prune(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(removed, 4);
    let sessions: Vec<String> = sqlx::query_scalar("SELECT session_id FROM ussd_sessions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, ["live"]);
    let buckets: Vec<String> = sqlx::query_scalar(
        "SELECT bucket FROM rate_limits WHERE bucket ~ '^(ip|merchant_setup|kyc):' ORDER BY bucket",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(buckets, ["ip:new", "merchant_setup:quiet"]);
    app.assert_balanced().await;
}

#[tokio::test]
async fn the_document_states_the_rules_the_server_enforces_and_the_server_keeps_to_it() {
    let app = spawn_app().await;
    let spec: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Query parameters are documented in the query, with their limits.
    let params = &spec["paths"]["/api/v1/wallet/transactions"]["get"]["parameters"];
    let limit = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["in"], "query", "{limit}");
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&Value::from(1), &Value::from(200))
    );
    // One ChainPay format, one set of limits, wherever it is used.
    let send = &spec["components"]["schemas"]["SendRequest"]["properties"];
    assert_eq!(send["to_phone"]["format"], "phone");
    assert_eq!(send["amount"]["minimum"], 1);
    let deposit = &spec["components"]["schemas"]["DepositRequest"]["properties"];
    assert_eq!(deposit["amount"]["multipleOf"], 100);
    assert_eq!(deposit["method"]["enum"], serde_json::json!(["mpesa"]));
    // Same-named request bodies of different routes are different schemas.
    let merchant = &spec["paths"]["/api/v1/admin/merchants"]["post"]["requestBody"];
    assert!(merchant.to_string().contains("NewMerchant"), "{merchant}");
    // A database out of reach is a 503 where a retry is safe (reads, keyed
    // requests), a 500 elsewhere.
    let documents_503 = |path: &str, method: &str| {
        spec["paths"][path][method]["responses"]
            .get("503")
            .is_some()
    };
    assert!(documents_503("/api/v1/wallet/balances", "get"));
    assert!(documents_503("/api/v1/wallet/send", "post"));
    assert!(!documents_503("/api/v1/auth/login", "post"));

    let admin = app.admin_token().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    // A page size the document refuses, the server refuses, on every list.
    for path in [
        "/api/v1/admin/users?limit=500",
        "/api/v1/admin/sms-outbox?limit=0",
        "/api/v1/wallet/transactions?limit=201",
        "/api/v1/wallet/transactions?before=0012",
    ] {
        let caller = if path.contains("/admin/") {
            &admin
        } else {
            &token
        };
        let response = app
            .request(reqwest::Method::GET, path, Some(caller))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    // `100.0` is the integer 100 to JSON Schema, and so to the server.
    let sent = app
        .post(
            "/api/v1/wallet/send",
            Some(&token),
            serde_json::json!({"to_phone": ADMIN_PHONE, "amount": 100.0, "currency": "KES"}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let tx: Value = sent.json().await.unwrap();
    assert_eq!(tx["amount"], 100);
    let fraction = app
        .post(
            "/api/v1/wallet/send",
            Some(&token),
            serde_json::json!({"to_phone": ADMIN_PHONE, "amount": 100.5, "currency": "KES"}),
        )
        .await;
    assert_problem(fraction, StatusCode::BAD_REQUEST, "validation_error").await;
    // A form route asked without a form answers a problem, not plain text.
    let no_form = app
        .client
        .post(app.url("/api/v1/ussd"))
        .body("sessionId=1")
        .send()
        .await
        .unwrap();
    assert_problem(no_form, StatusCode::BAD_REQUEST, "validation_error").await;
}
