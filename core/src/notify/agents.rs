//! Messages of movements at an agent's counter and of float issued to an
//! agent: the customer's confirmation, and the agent's instruction.

use super::{Party, Receipt, Shown, Sms};
use crate::lang::Lang;

/// The agent as a customer's message names them.
pub struct Agent<'a> {
    pub name: &'a str,
    pub number: &'a str,
}

/// What an agent's message reports about their float.
pub struct Float<'a> {
    pub commission: &'a Shown,
    pub balance: &'a Shown,
}

impl Sms {
    /// To the customer: cash paid in at an agent.
    pub fn cashed_in(&self, r: Receipt, amount: &Shown, agent: Agent, balance: &Shown) -> String {
        let (head, when, id, name, number) = (
            r.head(),
            r.when(),
            r.tx_id,
            agent.name.to_uppercase(),
            agent.number,
        );
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. You have deposited {amount} cash at agent {number} {name} on {when}. New balance is {balance}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Umeweka {amount} taslimu kwa wakala {number} {name} tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }

    /// To the agent: the cash-in they made.
    pub fn agent_cashed_in(
        &self,
        r: Receipt,
        amount: &Shown,
        customer: Party,
        float: Float,
    ) -> String {
        let (head, when, id, name) = (r.head(), r.when(), r.tx_id, customer.name.to_uppercase());
        let (commission, balance) = (float.commission, float.balance);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. Cash in of {amount} to {name} {} on {when}. Commission {commission}. Float balance is {balance}. Receipt {id}",
                customer.phone
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Umeweka {amount} kwa {name} {} tarehe {when}. Kamisheni {commission}. Salio la float ni {balance}. Risiti {id}",
                customer.phone
            ),
        }
    }

    /// To the customer: cash withdrawn at an agent.
    pub fn cashed_out(
        &self,
        r: Receipt,
        amount: &Shown,
        agent: Agent,
        balance: &Shown,
        fee: &Shown,
    ) -> String {
        let (head, when, id, name, number) = (
            r.head(),
            r.when(),
            r.tx_id,
            agent.name.to_uppercase(),
            agent.number,
        );
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} withdrawn at agent {number} {name} on {when}. New balance is {balance}. Fee {fee}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. {amount} imetolewa kwa wakala {number} {name} tarehe {when}. Salio jipya ni {balance}. Ada {fee}. Risiti {id}"
            ),
        }
    }

    /// To the agent: hand the customer their cash.
    pub fn agent_cashed_out(
        &self,
        r: Receipt,
        amount: &Shown,
        customer: Party,
        float: Float,
    ) -> String {
        let (head, id, name) = (r.head(), r.tx_id, customer.name.to_uppercase());
        let (commission, balance) = (float.commission, float.balance);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. Give {name} {} {amount} in cash. Commission {commission}. Float balance is {balance}. Receipt {id}",
                customer.phone
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Mpe {name} {} {amount} taslimu. Kamisheni {commission}. Salio la float ni {balance}. Risiti {id}",
                customer.phone
            ),
        }
    }

    /// To the agent: float bought from the treasury, issued after approval.
    pub fn float_issued(
        &self,
        r: Receipt,
        amount: &Shown,
        reference: &str,
        balance: &Shown,
    ) -> String {
        let (head, when, id) = (r.head(), r.when(), r.tx_id);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} float issued to your agent account (ref {reference}) on {when}. Float balance is {balance}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Float ya {amount} imetolewa kwa akaunti yako ya wakala (kumb {reference}) tarehe {when}. Salio la float ni {balance}. Risiti {id}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::receipt;

    #[test]
    fn the_agent_is_told_to_hand_over_the_cash_and_the_customer_gets_a_receipt() {
        let customer = Party {
            name: "Baraka Juma",
            phone: "+254712345678",
        };
        let float = Float {
            commission: "KES 2.00",
            balance: "KES 10,500.00",
        };
        let agent_text = Sms(Lang::En).agent_cashed_out(receipt(), "KES 500.00", customer, float);
        assert!(
            agent_text.contains("Give BARAKA JUMA +254712345678 KES 500.00 in cash"),
            "{agent_text}"
        );
        let agent = Agent {
            name: "Mary Wanjiru",
            number: "204815",
        };
        let text =
            Sms(Lang::Sw).cashed_out(receipt(), "KES 500.00", agent, "KES 495.00", "KES 5.00");
        assert!(
            text.contains("imetolewa kwa wakala 204815 MARY WANJIRU"),
            "{text}"
        );
        assert!(text.ends_with("Risiti 215f8c51-f7b1-4401-bcb4-2ceae6a0a31b"));
    }
}
