//! Messages of payments to merchants: the customer's receipt naming the
//! business, and the merchant owner's notice of money received.

use chrono::{DateTime, Utc};

use super::{eat, Party, Receipt, Shown, Sms};
use crate::lang::Lang;
use crate::ussd::SERVICE_CODE;

/// The business as a customer's message names it.
pub struct Business<'a> {
    pub name: &'a str,
    /// The till or paybill number.
    pub number: &'a str,
    /// For a paybill: the customer's account number with the business.
    pub account: Option<&'a str>,
}

impl Sms {
    /// To the customer: they paid a business.
    pub fn paid_merchant(
        &self,
        r: Receipt,
        amount: &Shown,
        business: Business,
        balance: &Shown,
    ) -> String {
        let (head, when, id, name, number) = (
            r.head(),
            r.when(),
            r.tx_id,
            business.name.to_uppercase(),
            business.number,
        );
        let account = match (self.0, business.account) {
            (_, None) => String::new(),
            (Lang::En, Some(a)) => format!(" for account {a}"),
            (Lang::Sw, Some(a)) => format!(" kwa akaunti {a}"),
        };
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} paid to {name} {number}{account} on {when}. New balance is {balance}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. {amount} imelipwa kwa {name} {number}{account} tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }

    /// To the customer: a business refunded (part of) a payment.
    pub fn merchant_refunded(
        &self,
        r: Receipt,
        amount: &Shown,
        business: &str,
        balance: &Shown,
    ) -> String {
        let (head, when, id, name) = (r.head(), r.when(), r.tx_id, business.to_uppercase());
        match self.0 {
            Lang::En => format!("{head} Confirmed. {name} refunded you {amount} on {when}. New balance is {balance}. Receipt {id}"),
            Lang::Sw => format!("{head} Imethibitishwa. {name} amekurudishia {amount} tarehe {when}. Salio jipya ni {balance}. Risiti {id}"),
        }
    }

    /// To the customer: a business asks them to pay, until `expires_at`.
    pub fn payment_requested(
        &self,
        business: &str,
        amount: &Shown,
        reference: &str,
        expires_at: DateTime<Utc>,
    ) -> String {
        let (name, until) = (business.to_uppercase(), eat(expires_at));
        match self.0 {
            Lang::En => format!("ChainPay: {name} asks you to pay {amount}, ref {reference}. To pay or decline, dial {SERVICE_CODE}, choose 10 Pay merchant, 3 Pending requests, before {until}. Ignore it if you did not expect it."),
            Lang::Sw => format!("ChainPay: {name} anakuomba ulipe {amount}, kumb. {reference}. Kulipa au kukataa, piga {SERVICE_CODE}, chagua 10 Lipa biashara, 3 Maombi ya malipo, kabla ya {until}. Lipuuze kama hukulitarajia."),
        }
    }

    /// To a business's owner: an API key was made for the business (as
    /// anyone holding the owner's session could), so they would know.
    pub fn api_key_created(&self, business: &str, prefix: &str, scopes: &[String]) -> String {
        let scopes = scopes.join(", ");
        match self.0 {
            Lang::En => format!("ChainPay: a new API key cpk_{prefix} was made for {business} ({scopes}). If you did not make it, revoke it and change your PIN."),
            Lang::Sw => format!("ChainPay: ufunguo mpya wa API cpk_{prefix} umetengenezwa kwa {business} ({scopes}). Kama si wewe, ubatilishe na ubadilishe PIN yako."),
        }
    }

    /// To the merchant's owner: a webhook endpoint that kept failing was
    /// switched off.
    pub fn webhook_disabled(&self, url: &str, days: i32) -> String {
        let url: String = url.chars().take(60).collect();
        match self.0 {
            Lang::En => format!("ChainPay: your webhook endpoint {url} has failed for {days} days and was switched off. Fix it and register it again."),
            Lang::Sw => format!("ChainPay: anwani yako ya webhook {url} imeshindwa kwa siku {days} na imezimwa. Irekebishe na uisajili tena."),
        }
    }

    /// To the merchant's owner: a customer paid the business.
    pub fn merchant_paid(
        &self,
        r: Receipt,
        amount: &Shown,
        customer: Party,
        fee: &Shown,
        balance: &Shown,
    ) -> String {
        let (head, when, id, name) = (r.head(), r.when(), r.tx_id, customer.name.to_uppercase());
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} received from {name} {} on {when}. Fee {fee}. Business balance is {balance}. Receipt {id}",
                customer.phone
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. {amount} imepokelewa kutoka kwa {name} {} tarehe {when}. Ada {fee}. Salio la biashara ni {balance}. Risiti {id}",
                customer.phone
            ),
        }
    }
}
