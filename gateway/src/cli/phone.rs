//! `chainpay phone <msisdn>`: a feature phone in the terminal.
//!
//! It dials the running server's `/api/v1/ussd` exactly as Africa's Talking
//! would (a fresh `sessionId` per dial, every input of the session joined by
//! `*` in `text`), prints each screen, and shows the SMS the gateway sends to
//! that number (read from the outbox, as the handset would receive them).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chainpay_core::ussd::SERVICE_CODE;
use chainpay_core::Msisdn;
use sqlx::PgPool;

use crate::config::Settings;

/// How long to wait for SMS after a session ends.
const SMS_WAIT: Duration = Duration::from_secs(4);

struct Handset<'a> {
    http: reqwest::Client,
    url: String,
    phone: &'a Msisdn,
    pool: &'a PgPool,
    last_sms_id: i64,
}

impl Handset<'_> {
    async fn post(&self, session_id: &str, text: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(&self.url)
            .form(&[
                ("sessionId", session_id),
                ("serviceCode", SERVICE_CODE),
                ("phoneNumber", self.phone.as_str()),
                ("networkCode", "63902"),
                ("text", text),
            ])
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(status.is_success(), "the server answered {status}: {body}");
        Ok(body)
    }

    /// Prints SMS that arrived since the last look; waits up to `wait` for the first.
    async fn show_sms(&mut self, wait: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let messages = sqlx::query!(
                "SELECT id, message FROM sms_outbox WHERE to_phone = $1 AND id > $2 AND status IN ('SENT', 'DELIVERED') ORDER BY id",
                self.phone.as_str(),
                self.last_sms_id
            )
            .fetch_all(self.pool)
            .await?;
            for message in &messages {
                println!("[SMS from ChainPay] {}", message.message);
                self.last_sms_id = message.id;
            }
            if !messages.is_empty() || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn read_line(prompt: &str) -> Option<String> {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

pub async fn run(settings: &Settings, pool: PgPool, msisdn: &str) -> anyhow::Result<ExitCode> {
    let phone = Msisdn::parse(msisdn)
        .map_err(|_| anyhow::anyhow!("{msisdn} is not a valid phone number"))?;
    let mut url = format!("http://{}/api/v1/ussd", settings.listen_addr);
    if let Some(token) = &settings.at_webhook_token {
        url.push_str(&format!("?token={token}"));
    }
    let last_sms_id =
        sqlx::query_scalar!(r#"SELECT coalesce(max(id), 0) AS "id!" FROM sms_outbox"#)
            .fetch_one(&pool)
            .await?;
    let mut handset = Handset {
        http: reqwest::Client::new(),
        url,
        phone: &phone,
        pool: &pool,
        last_sms_id,
    };
    println!("ChainPay phone simulator: {} (type q to hang up)", phone);
    loop {
        println!("\nDialling {SERVICE_CODE} ...");
        let session_id = format!("sim-{}", uuid::Uuid::new_v4().simple());
        let mut text = String::new();
        let mut screen = handset.post(&session_id, &text).await?;
        loop {
            let (kind, body) = screen.split_at(screen.len().min(4));
            println!(
                "+--------------------------------+\n{}\n+--------------------------------+",
                body.trim_end()
            );
            if kind.trim() != "CON" {
                break;
            }
            let Some(input) = read_line("> ") else {
                return Ok(ExitCode::SUCCESS);
            };
            if input.eq_ignore_ascii_case("q") {
                return Ok(ExitCode::SUCCESS);
            }
            text = if text.is_empty() {
                input
            } else {
                format!("{text}*{input}")
            };
            screen = handset.post(&session_id, &text).await?;
        }
        handset.show_sms(SMS_WAIT).await?;
        match read_line("\n[Enter] dial again, q to quit: ") {
            Some(line) if !line.eq_ignore_ascii_case("q") => continue,
            _ => return Ok(ExitCode::SUCCESS),
        }
    }
}
