//! Who takes part in a movement, and the AML gate every outgoing movement
//! passes before it is posted.

use chainpay_core::compliance::{Decision, Rule};
use std::collections::HashMap;

use chainpay_core::refusal::Refusal;
use chainpay_core::Lang;
use serde_json::{json, Value};
use sqlx::{Database, PgConnection, Postgres, TransactionManager};
use uuid::Uuid;

use crate::compliance::sanctions::{self, Party};
use crate::compliance::{limits, sars};
use crate::error::{ComplianceRefusal, Error};
use crate::rules::Rules;
use crate::state::AppState;

/// A user taking part in a movement.
#[derive(Debug, Clone)]
pub struct Person {
    pub party: Party,
    pub suspended: bool,
    pub kyc_status: String,
    /// The language their SMS are written in.
    pub lang: Lang,
}

impl Person {
    /// Whether money may be paid to this person.
    pub fn can_receive(&self) -> bool {
        !self.suspended && self.kyc_status != "REJECTED"
    }

    /// Whether this person may move money now, read with the movement: a
    /// suspension takes effect even for a request authenticated before it.
    pub fn may_send(&self) -> Result<(), Error> {
        if self.suspended {
            return Err(Refusal::AccountSuspended.into());
        }
        Ok(())
    }
}

/// The sender, the counterparty named by phone (if any and registered) and
/// the current sanctions list version, in one round trip.
///
/// Inside a movement's transaction this also locks the sender's row (and
/// only theirs), so a sender's movements are decided one at a time: the AML
/// windows, read by a *later* statement, then see every movement that
/// committed while this one waited. (Reading them in the locking statement
/// would not: its snapshot predates the wait.)
pub struct Parties {
    pub sender: Person,
    pub counterparty: Option<Person>,
    pub list_version: i64,
}

pub async fn load(
    conn: &mut PgConnection,
    sender_id: Uuid,
    counterparty_phone: Option<&str>,
) -> Result<Parties, Error> {
    let phones: Vec<String> = counterparty_phone.map(str::to_owned).into_iter().collect();
    let in_transaction =
        <Postgres as Database>::TransactionManager::get_transaction_depth(conn) > 0;
    let mut people = if in_transaction {
        load_many(conn, &[sender_id], &phones).await?
    } else {
        // A preview: nothing is locked. Such a lock would end with its
        // statement and guard nothing, yet cost a transaction id, a WAL
        // record and a flushed commit for every screen a caller sees. One
        // sender and at most one phone, as scalars: PostgreSQL settles on one
        // generic plan, where [`load_many`]'s arrays of unknown length had it
        // plan every call anew (about 117 µs of a USSD send).
        let rows = sqlx::query_as!(
            PersonRow,
            r#"SELECT id, name, phone, suspended, kyc_status, language, screened_list_version, sanctions_match_id,
                      (SELECT version FROM sanctions_list) AS "list_version!"
               FROM users WHERE id = $1 OR phone = $2"#,
            sender_id,
            counterparty_phone
        )
        .fetch_all(conn)
        .await?;
        People::of(rows, &[sender_id], &phones)
    };
    let counterparty = counterparty_phone.and_then(|phone| people.by_phone.remove(phone));
    Ok(Parties {
        sender: people.by_id.remove(&sender_id).ok_or(Error::Unauthorized)?,
        counterparty,
        list_version: people.list_version,
    })
}

/// The parties of many movements: each sender by id, each counterparty by
/// phone (a sender named by phone appears in both).
pub struct People {
    pub by_id: HashMap<Uuid, Person>,
    pub by_phone: HashMap<String, Person>,
    pub list_version: i64,
}

/// [`load`] for many movements at once, in their transaction: locks every
/// sender (in id order, so two batches never wait on each other in a
/// cycle) and reads them and the counterparties named by `phones`, in one
/// round trip.
pub async fn load_many(
    conn: &mut PgConnection,
    senders: &[Uuid],
    phones: &[String],
) -> Result<People, Error> {
    // The senders' rows are read by the scan that locks them, which returns
    // each at its newest version: a suspension committed while this waited
    // for the lock counts (the statement's snapshot would not show it). The
    // counterparties are read after every sender is locked (`count(*)` runs
    // the locking CTE to its end; an EXISTS would stop at its first row).
    let rows = sqlx::query_as!(
        PersonRow,
        r#"WITH senders AS (SELECT id, name, phone, suspended, kyc_status, language, screened_list_version, sanctions_match_id
                            FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)
           SELECT id AS "id!", name AS "name!", phone AS "phone!", suspended AS "suspended!", kyc_status AS "kyc_status!",
                  language AS "language!", screened_list_version AS "screened_list_version!", sanctions_match_id,
                  (SELECT version FROM sanctions_list) AS "list_version!"
           FROM (SELECT * FROM senders
                 UNION ALL
                 SELECT id, name, phone, suspended, kyc_status, language, screened_list_version, sanctions_match_id
                 FROM users WHERE phone = ANY($2) AND id <> ALL($1) AND (SELECT count(*) FROM senders) >= 0) people"#,
        senders,
        phones
    )
    .fetch_all(conn)
    .await?;
    Ok(People::of(rows, senders, phones))
}

impl People {
    /// `rows` filed by id (the senders) and by phone (the counterparties).
    fn of(rows: Vec<PersonRow>, senders: &[Uuid], phones: &[String]) -> Self {
        let mut people = People {
            by_id: HashMap::new(),
            by_phone: HashMap::new(),
            list_version: rows.first().map_or(0, |row| row.list_version),
        };
        for row in rows {
            let person = Person {
                party: Party {
                    user_id: row.id,
                    name: row.name,
                    phone: row.phone,
                    screened_list_version: row.screened_list_version,
                    sanctions_match_id: row.sanctions_match_id,
                },
                suspended: row.suspended,
                kyc_status: row.kyc_status,
                lang: Lang::parse(&row.language),
            };
            if phones.contains(&person.party.phone) {
                people
                    .by_phone
                    .insert(person.party.phone.clone(), person.clone());
            }
            if senders.contains(&person.party.user_id) {
                people.by_id.insert(person.party.user_id, person);
            }
        }
        people
    }
}

/// A user as [`load`] and [`load_many`] read them.
struct PersonRow {
    id: Uuid,
    name: String,
    phone: String,
    suspended: bool,
    kyc_status: String,
    language: String,
    screened_list_version: i64,
    sanctions_match_id: Option<i64>,
    list_version: i64,
}

/// Which way the money goes, for the tier limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Leaving the sender's wallet (sends, conversions, withdrawals).
    Outgoing,
    /// Coming into the customer's wallet from outside (deposits).
    Incoming,
}

/// Refuses a suspended sender (read with the movement), screens `parties`
/// and applies the sender's tier limits and rolling windows (locking the
/// sender). `Ok(Some(rule))` means allowed, but a report under `rule` must
/// be filed with the posted transaction.
pub async fn aml_gate(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    parties: &Parties,
    usd_cents: i64,
) -> Result<Option<Rule>, Error> {
    parties.sender.may_send()?;
    gate(conn, state, rules, parties, usd_cents, Direction::Outgoing).await
}

/// [`aml_gate`] in either direction.
pub async fn gate(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    parties: &Parties,
    usd_cents: i64,
    direction: Direction,
) -> Result<Option<Rule>, Error> {
    screen(conn, state, rules, parties, usd_cents).await?;
    let sender = parties.sender.party.user_id;
    let decision = match direction {
        Direction::Outgoing => limits::check_outgoing(conn, rules, sender, usd_cents).await?,
        Direction::Incoming => limits::check_incoming(conn, rules, sender, usd_cents).await?,
    };
    match decision {
        Decision::Allow => Ok(None),
        Decision::AllowAndReport(rule) => Ok(Some(rule)),
        Decision::Reject(rule) => {
            Err(ComplianceRefusal::new(rule, json!({"usd_cents": usd_cents})).into())
        }
    }
}

/// Screens both parties against the sanctions list (a hit refuses and
/// reports), without tier limits: for movements that are an agent's
/// business rather than anyone's own spending.
pub async fn screen(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    parties: &Parties,
    usd_cents: i64,
) -> Result<(), Error> {
    let mut screened = vec![&parties.sender.party];
    if let Some(counterparty) = &parties.counterparty {
        screened.push(&counterparty.party);
    }
    let listed = sanctions::first_listed(
        conn,
        &state.sanctions,
        rules.sanctions_threshold,
        parties.list_version,
        &screened,
    )
    .await?;
    if let Some((party, hit)) = listed {
        let finding = json!({
            "party": party.user_id, "phone": party.phone, "listed_id": hit.listed_id,
            "listed_name": hit.listed_name, "score": hit.score, "matched_on": hit.matched_on,
            "sender": parties.sender.party.user_id, "usd_cents": usd_cents,
        });
        let refusal = ComplianceRefusal::new(Rule::Sanctions, finding.clone())
            .reported(Some(party.user_id), finding);
        return Err(refusal.into());
    }
    Ok(())
}

/// Files the report [`aml_gate`] asked for, with the posted transaction.
pub async fn file_report(
    conn: &mut PgConnection,
    rule: Option<Rule>,
    sender: Uuid,
    tx_id: Uuid,
    finding: Value,
) -> sqlx::Result<()> {
    if let Some(rule) = rule {
        sars::open_or_append(conn, Some(sender), rule.as_str(), Some(tx_id), finding).await?;
    }
    Ok(())
}
