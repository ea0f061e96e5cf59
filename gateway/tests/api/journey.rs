//! The spine's headline journey, end to end over HTTP and PostgreSQL.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn register_login_send_both_parties_see_it_and_logout_revokes() {
    let app = spawn_app().await;

    let registered = app
        .register("0712345678", "  Amina   Otieno ", "5831")
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let body: Value = registered.json().await.unwrap();
    assert_eq!(body["phone"], "+254712345678");
    assert_eq!(body["name"], "Amina Otieno");
    assert_eq!(body["kyc_status"], "PENDING");

    let login = app.login("254712345678", "5831").await;
    assert_eq!(login.status(), StatusCode::OK);
    let login: Value = login.json().await.unwrap();
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 3600);
    assert_eq!(login["user"]["role"], "user");
    let amina = login["access_token"].as_str().unwrap().to_owned();

    // A new user has a wallet in every currency, all empty.
    let balances: Value = app
        .get("/api/v1/wallet/balances", &amina)
        .await
        .json()
        .await
        .unwrap();
    let currencies: Vec<&str> = balances["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["currency"].as_str().unwrap())
        .collect();
    assert_eq!(currencies, ["EUR", "GBP", "KES", "NGN", "USD"]);
    assert!(balances["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["balance"] == 0 && w["available"] == 0));

    // The demo user pays Amina KES 250.00 (about USD 1.93): the fee is 2 %, KES 5.00.
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    let demo_before = app.balance(&demo, "KES").await;
    let sent = app.send(&demo, "+254712345678", 25_000, "KES").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let tx: Value = sent.json().await.unwrap();
    assert_eq!(tx["type"], "transfer");
    assert_eq!(tx["status"], "COMPLETED");
    assert_eq!(tx["amount"], 25_000);
    assert_eq!(tx["fee"], 500);
    assert_eq!(tx["from_phone"], USER_PHONE);
    assert_eq!(tx["to_phone"], "+254712345678");
    assert_eq!(tx["signature"].as_str().unwrap().len(), 64);
    let tx_id = tx["tx_id"].as_str().unwrap().to_owned();

    assert_eq!(app.balance(&amina, "KES").await, 25_000);
    assert_eq!(app.balance(&demo, "KES").await, demo_before - 25_500);

    // Both parties see the transaction in their history and can open it.
    for token in [&amina, &demo] {
        let page = app.get_json("/api/v1/wallet/transactions", token).await;
        assert_eq!(page["transactions"][0]["tx_id"], tx_id.as_str());
        let one = app
            .get(&format!("/api/v1/transactions/{tx_id}"), token)
            .await;
        assert_eq!(one.status(), StatusCode::OK);
    }

    // A third user cannot read it, and learns nothing: 404.
    let stranger = app.new_user("+254711000111", "Stranger").await;
    let hidden = app
        .get(&format!("/api/v1/transactions/{tx_id}"), &stranger)
        .await;
    assert_problem(hidden, StatusCode::NOT_FOUND, "not_found").await;

    // Logout revokes the token at once.
    let logout = app
        .request(reqwest::Method::POST, "/api/v1/auth/logout", Some(&amina))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = app.get("/api/v1/wallet/balances", &amina).await;
    assert_problem(after, StatusCode::UNAUTHORIZED, "unauthorized").await;

    app.assert_balanced().await;
}
